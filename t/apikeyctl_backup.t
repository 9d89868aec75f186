#!/usr/bin/perl

# Tests apikeyctl backup and restore: a compact copy made into a new or
# empty directory with the group and mode of the source, with its own
# lock.mdb (a backup can be served or checked as it is, from read-only
# media too), and a restore
# that replaces the keys of the live database in one write transaction;
# every refusal (an unusable DEST, a missing, truncated, foreign or empty
# SRC, the live database given as SRC, removing more than half of the
# keys, ".", ".." or the current directory, a mount point, the database
# directory behind a bind mount) exits with its code and changes
# nothing; a backup killed while it writes, or stopped by a file size
# limit, leaves no DEST.

use strict;
use warnings;

use Test::More;

use Cwd qw(abs_path);
use Digest::SHA qw(sha256_hex);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $dir = abs_path($t->prefix());
my $db = $t->db();

my ($rc, $out, $err, $live);

# check is built by a colleague: its assertion is skipped only while the
# stub is there

sub check_db {
    my ($name, @opts) = @_;

    my ($rc, $out, $err) = $t->ctl(@opts, 'check');

    SKIP: {
        skip 'apikeyctl check is not built yet', 1
            if $err =~ /not built yet/;
        is($rc, 0, "check: $name") or diag($out . $err);
    }
}

sub digest {
    my ($file) = @_;

    open my $fh, '<:raw', $file or return '';
    local $/;
    my $data = <$fh>;
    close $fh;

    return sha256_hex($data);
}

sub entries {
    my ($d) = @_;

    opendir my $dh, $d or return '';
    my @e = sort grep { $_ ne '.' && $_ ne '..' } readdir $dh;
    closedir $dh;

    return join(',', @e);
}

sub mode_group {
    my ($path) = @_;

    my @st = stat $path or return '';

    return sprintf('%04o:%d', $st[2] & 07777, $st[5]);
}

$t->init_db();

my %key;
$key{$_} = $t->gen('--id', $_, '--subject', "s-$_") for qw(a b c d e);

# a rotation, when rotate is built: the links survive the round trip

($rc, $out, $err) = $t->ctl('rotate', 'e', '--new-id', 'e2');
my $rotated = $rc == 0;
diag("rotate not available: $err") unless $rotated;

my $saved = $t->ctl_ok('export');

# backup into a new directory

($rc, $out, $err) = $t->ctl('backup', "$dir/b1");
is($rc, 0, 'backup: exit code') or diag($err);
my $nkeys = $rotated ? 6 : 5;
like($out, qr/^backed up $nkeys keys to "\Q$dir\E\/b1" \(\d+ bytes\)\n\z/,
     'backup: output');
is($err, '', 'backup: stderr');
is(entries("$dir/b1"), 'data.mdb,lock.mdb', 'backup: data.mdb and lock.mdb');
is(entries($dir) =~ /incomplete/ ? 'left' : '', '',
   'backup: no temporary directory left');
is(mode_group("$dir/b1"), mode_group($db), 'backup: directory mode, group');
is(mode_group("$dir/b1/data.mdb"), mode_group("$db/data.mdb"),
   'backup: data.mdb mode, group');
is(mode_group("$dir/b1/lock.mdb"),
   sprintf('%04o:%d', ((stat "$db/data.mdb")[2] & 040) ? 0660 : 0600,
           (stat "$db/data.mdb")[5]),
   'backup: lock.mdb mode, group: those apikeyctl gives a missing one');
cmp_ok(-s "$dir/b1/lock.mdb", '>=', 510 * 64,
       'backup: lock.mdb with init\'s reader slots');

SKIP: {
    skip 'not root: init has no --user', 1 unless $> == 0;
    is((stat "$dir/b1/data.mdb")[5], scalar getgrnam('nogroup'),
       'backup: the group of init --user');
}

my $b1 = digest("$dir/b1/data.mdb");

# a second copy, opened as a database: the same keys, and lock.mdb made
# with the group and mode of data.mdb

$t->ctl_ok('backup', "$dir/b2");
is($t->ctl_ok({ db => "$dir/b2" }, 'export'), $saved,
   'backup opened as a database: export identical');
is(mode_group("$dir/b2/lock.mdb") =~ /:(\d+)$/ && $1,
   mode_group("$db/data.mdb") =~ /:(\d+)$/ && $1,
   'backup opened as a database: lock.mdb of its group');
check_db('backup opened as a database', { db => "$dir/b2" });

# into an empty directory, named with a trailing slash

mkdir "$dir/empty";
($rc, $out, $err) = $t->ctl('backup', "$dir/empty/");
is($rc, 0, 'backup into an empty directory: exit code') or diag($err);
is(entries("$dir/empty"), 'data.mdb,lock.mdb',
   'backup into an empty directory');

# refusals: exit 1 or 2, nothing written, the database unchanged

mkdir "$dir/full";
open my $fh, '>', "$dir/full/notes" or die;
close $fh;
open $fh, '>', "$dir/file" or die;
close $fh;
mkdir "$db/sub";
mkdir "$dir/empty2";
mkdir "$dir/empty2/x";
symlink $db, "$dir/dblink" or die;

my @refused = (
    [ 'a directory holding a backup', [ "$dir/b1" ], 1,
      qr/^apikeyctl: backup: "\Q$dir\E\/b1" holds a database already; nothing was written \(give a new or empty directory\)\n\z/ ],
    [ 'a directory that is not empty', [ "$dir/full" ], 1,
      qr/^apikeyctl: backup: "\Q$dir\E\/full" is not empty; nothing was written/ ],
    [ 'a file', [ "$dir/file" ], 1,
      qr/^apikeyctl: backup: "\Q$dir\E\/file" exists and is not a directory/ ],
    [ 'the database directory', [ $db ], 1,
      qr/is the database directory or inside it; nothing was written\n\z/ ],
    [ 'the database directory with a slash', [ "$db/" ], 1,
      qr/is the database directory or inside it/ ],
    [ 'a new directory inside the database', [ "$db/new" ], 1,
      qr/is the database directory or inside it/ ],
    [ 'an empty directory inside the database', [ "$db/sub" ], 1,
      qr/is the database directory or inside it/ ],
    [ 'a link to the database directory', [ "$dir/dblink" ], 1,
      qr/is the database directory or inside it/ ],
    [ 'a path inside a link to the database', [ "$dir/dblink/x" ], 1,
      qr/is the database directory or inside it/ ],
    [ 'the current directory', [ '.' ], 1,
      qr/^apikeyctl: backup: "\." ends in "\.": name the backup directory itself, a new one \(such as "backup-1"\) or an empty one, not the current or the parent directory; nothing was written\n\z/ ],
    [ 'the current directory with a slash', [ './' ], 1,
      qr/^apikeyctl: backup: "\.\/" ends in "\."/ ],
    [ 'the parent directory', [ '..' ], 1, qr/ends in "\.\."/ ],
    [ 'a path ending in "."', [ "$dir/empty2/." ], 1,
      qr/^apikeyctl: backup: "\Q$dir\E\/empty2\/\." ends in "\."/ ],
    [ 'a path ending in ".."', [ "$dir/empty2/x/.." ], 1,
      qr/ends in "\.\."/ ],
    [ 'a missing parent directory', [ "$dir/nope/b" ], 1,
      qr/^apikeyctl: backup: "\Q$dir\E\/nope\/b": the directory it is to be made in: No such file or directory\n\z/ ],
    [ 'no DEST', [], 2, qr/expected the backup directory DEST/ ],
    [ 'an empty DEST', [ '' ], 2, qr/empty DEST/ ],
    [ 'standard output', [ '-' ], 2,
      qr/DEST is a directory; "-" \(standard output\) is not one/ ],
    [ 'two DESTs', [ "$dir/x1", "$dir/x2" ], 2,
      qr/unexpected argument "\Q$dir\E\/x2"/ ],
    [ 'an unknown option', [ '--compact', "$dir/x1" ], 2,
      qr/invalid option "--compact"/ ],
);

my $listing = entries($dir);

for my $r (@refused) {
    my ($name, $args, $want, $msg) = @$r;

    ($rc, $out, $err) = $t->ctl('backup', @$args);
    is($rc, $want, "backup refused, $name: exit code");
    like($err, $msg, "backup refused, $name: message");
    is($out, '', "backup refused, $name: no output");
}

is(entries($dir), $listing, 'backup refused: nothing written beside');
is(entries("$db/sub"), '', 'backup refused: nothing written inside');
is(entries("$dir/full"), 'notes', 'backup refused: a full directory kept');
is(entries("$dir/empty2"), 'x', 'backup refused: "dir/." left empty');

# the current directory, empty: renamed over, it would leave the shell
# in a deleted directory

mkdir "$dir/cwd";
chdir "$dir/cwd" or die;
($rc, $out, $err) = $t->ctl('backup', "$dir/cwd");
chdir '/' or die;
is($rc, 1, 'backup refused, the current directory by name: exit code');
like($err, qr/^apikeyctl: backup: "\Q$dir\E\/cwd" is the current directory; nothing was written \(give a new directory, such as "backup-1"\)\n\z/,
     'backup refused, the current directory by name: message');
is(entries("$dir/cwd"), '', 'backup refused, the current directory: empty');

# mounts (root only): a mount point as DEST is refused before anything
# is written, a bind mount of the database directory is seen through,
# and a backup on read-only media is restored from

# a test that dies leaves no mount behind its temporary directory

END {
    local $?;

    if ($> == 0) {
        system("umount $dir/$_ 2>/dev/null") for qw(mnt bindpoint bindm ro);
    }
}

SKIP: {
    skip 'not root: no mounts', 17 unless $> == 0;

    mkdir "$dir/mnt";
    skip 'mount failed (no privilege in this container?)', 17
        unless system("mount -t tmpfs -o size=16m tmpfs $dir/mnt "
                      . "2>/dev/null") == 0;

    ($rc, $out, $err) = $t->ctl('backup', "$dir/mnt");
    is($rc, 1, 'backup refused, a mount point: exit code');
    like($err, qr/^apikeyctl: backup: "\Q$dir\E\/mnt" is a mount point: the copy is written beside DEST and renamed onto it, which a mount point does not allow; nothing was written \(give a new directory inside it\)\n\z/,
         'backup refused, a mount point: message');
    is(scalar(grep { /incomplete/ } split /,/, entries($dir)), 0,
       'backup refused, a mount point: nothing written beside it');

    ($rc, $out, $err) = $t->ctl('backup', "$dir/mnt/b");
    is($rc, 0, 'backup into a new directory on the mount') or diag($err);
    system('umount', "$dir/mnt");

    # a bind mount of the same file system: the same device

    mkdir "$dir/bindempty";
    mkdir "$dir/bindpoint";
    system('mount', '--bind', "$dir/bindempty", "$dir/bindpoint") == 0
        or die;
    ($rc, $out, $err) = $t->ctl('backup', "$dir/bindpoint");
    is($rc, 1, 'backup refused, a bind mount point: exit code');
    like($err, qr/is a mount point/, 'backup refused, a bind mount point');
    system('umount', "$dir/bindpoint");

    # the database directory mounted elsewhere: inside it all the same

    mkdir "$dir/bindm";
    system('mount', '--bind', $db, "$dir/bindm") == 0 or die;

    for my $d ("$dir/bindm/sub", "$dir/bindm/new", "$dir/bindm",
               "$dir/bindm/") {
        ($rc, $out, $err) = $t->ctl('backup', $d);
        is($rc, 1, "backup refused, $d through a bind mount: exit code");
        like($err, qr/is the database directory or inside it; nothing was written\n\z/,
             "backup refused, $d through a bind mount: message");
    }

    system('umount', "$dir/bindm");
    is(entries($db), 'data.mdb,lock.mdb,sub',
       'backup refused through a bind mount: nothing written');
    is(entries("$db/sub"), '',
       'backup refused through a bind mount: nothing written inside');

    # a backup on read-only media: read through its lock file if it can,
    # else without it

    mkdir "$dir/ro";
    system('mount', '--bind', "$dir/b1", "$dir/ro") == 0 or die;
    system('mount', '-o', 'remount,bind,ro', "$dir/ro") == 0 or die;
    $t->ctl_ok('gen', '--id', 'ro-extra');

    ($rc, $out, $err) = $t->ctl('restore', "$dir/ro");
    is($rc, 0, 'restore from a read-only mount') or diag($err);
    is($t->ctl_ok('export'), $saved, 'restore from a read-only mount: export');
    system('umount', "$dir/ro");
}
is(digest("$dir/b1/data.mdb"), $b1, 'backup refused: a backup kept');
rmdir "$db/sub";
is($t->ctl_ok('export'), $saved, 'backup refused: database unchanged');

# the source is checked first: another secret, no database

write_file("$dir/other.secret", ('ab' x 32) . "\n");
($rc, $out, $err) = $t->ctl({ secret => "$dir/other.secret" }, 'backup',
                            "$dir/x3");
is($rc, 1, 'backup with another secret: exit code');
like($err, qr/another secret/, 'backup with another secret: message');
ok(!-e "$dir/x3", 'backup with another secret: no DEST');

($rc, $out, $err) = $t->ctl({ db => "$dir/none" }, 'backup', "$dir/x4");
is($rc, 1, 'backup of no database: exit code');
like($err, qr/does not exist/, 'backup of no database: message');
ok(!-e "$dir/x4", 'backup of no database: no DEST');

# restore: the keys change (revoke removes a key), then the backup brings them back

$t->ctl_ok('revoke', 'c');
$t->ctl_ok('disable', 'd');
my $f = $t->gen('--id', 'f');
isnt($t->ctl_ok('export'), $saved, 'keys changed after the backup');

($rc, $out, $err) = $t->ctl('restore', "$dir/b1");
is($rc, 0, 'restore: exit code') or diag($err);
like($out, qr/^restored $nkeys keys from "\Q$dir\E\/b1" \($nkeys keys before\): \d+ unchanged, 1 back, 1 changed, 1 removed\n1 key back \(in the backup, not in the live database: revoked since the backup\?\): "c"\n1 key changed \(1 enabled again\): "d" \(enabled again\)\n1 key removed \(in the live database, not in the backup\): "f"\n\z/,
     'restore: output');
is($err, '', 'restore: stderr');
is($t->ctl_ok('export'), $saved, 'restore: export identical to the backup');
check_db('after restore');

is(($t->ctl({ input => "$key{c}\n" }, 'verify', '-'))[0], 0,
   'restore: a key revoked after the backup is valid again');
is(($t->ctl({ input => "$f\n" }, 'verify', '-'))[0], 4,
   'restore: a key made after the backup is gone');
is(($t->ctl({ input => "$key{d}\n" }, 'verify', '-'))[0], 0,
   'restore: a key disabled after the backup is enabled again');
is(digest("$dir/b1/data.mdb"), $b1, 'restore: the backup is not changed');
is(entries("$dir/b1"), 'data.mdb,lock.mdb', 'restore: nothing added to the backup');

SKIP: {
    skip 'rotate is not built yet', 2 unless $rotated;

    like($t->ctl_ok('show', 'e'), qr/^replaced_by: e2$/m,
         'restore: the old key still names its successor');
    like($t->ctl_ok('show', 'e2'), qr/^replaces: e$/m,
         'restore: the new key still names the key it replaced');
}

# a backup with a lock file (opened as a database) restores through it

($rc, $out, $err) = $t->ctl('restore', "$dir/b2");
is($rc, 0, 'restore from a directory with lock.mdb') or diag($err);
is($t->ctl_ok('export'), $saved, 'restore with lock.mdb: export');

# refusals of restore: exit 1, nothing changed

system('cp', '-a', "$dir/b1", "$dir/half") == 0 or die;
truncate "$dir/half/data.mdb", int((-s "$dir/half/data.mdb") / 2) or die;
system('cp', '-a', "$dir/b1", "$dir/short") == 0 or die;
truncate "$dir/short/data.mdb", 4096 or die;
system('cp', '-a', "$dir/b1", "$dir/zero") == 0 or die;
truncate "$dir/zero/data.mdb", 0 or die;
mkdir "$dir/nodata";
symlink $db, "$dir/dblink2" or die;

$t->init_db({ db => "$dir/foreign", secret => "$dir/other.secret" });
$t->ctl_ok({ db => "$dir/foreign", secret => "$dir/other.secret" }, 'gen');
system('cp', '-a', "$dir/b1", "$dir/format1") == 0 or die;

my $dump = "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
           . " " . unpack('H*', 'format') . "\n"
           . " 0100000000000000\n"
           . "DATA=END\n";

my $have_load = -x '/usr/bin/mdb_load';

if ($have_load) {
    open my $ld, '|-', "/usr/bin/mdb_load -s meta $dir/format1" or die;
    print $ld $dump;
    close $ld;
}

# another kind of LMDB environment: no meta

if ($have_load) {
    mkdir "$dir/plain";
    open my $ld, '|-', "/usr/bin/mdb_load -s other $dir/plain 2>/dev/null"
        or die;
    print $ld "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
              . " 6b\n 76\nDATA=END\n";
    close $ld;
}

# damaged copies, made with mdb_load: a record that does not decode, an
# id naming another key, an id naming no key

my %hash = map { (split /,/)[1, 0] } map { s/"//gr }
           split /\n/, $t->ctl_ok({ db => "$dir/b2" }, 'export', '--format',
                                  'csv');

sub damage {
    my ($name, $db, $text) = @_;

    system('cp', '-a', "$dir/b1", "$dir/$name") == 0 or die;
    open my $ld, '|-', "/usr/bin/mdb_load -s $db $dir/$name" or die;
    print $ld "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
              . $text . "DATA=END\n";
    close $ld;
    unlink "$dir/$name/lock.mdb";
}

if ($have_load) {
    damage('undecodable', 'keys', " $hash{a}\n 00\n");
    damage('idswap', 'ids', ' ' . unpack('H*', 'b') . "\n $hash{a}\n");
    damage('ghost', 'ids', ' ' . unpack('H*', 'ghost') . "\n "
                           . ('ab' x 32) . "\n");
}

$t->ctl_ok('gen', '--id', 'g');
$live = $t->ctl_ok('export');

my @bad = (
    [ 'a missing directory', "$dir/missing",
      qr/^apikeyctl: restore: "\Q$dir\E\/missing": No such file or directory\napikeyctl: restore: nothing was changed\n\z/ ],
    [ 'a file', "$dir/file", qr/is not a directory/ ],
    [ 'a directory without data.mdb', "$dir/nodata",
      qr/holds no data.mdb: not a backup/ ],
    [ 'data.mdb cut to half', "$dir/half", qr/truncated|ends before/ ],
    [ 'data.mdb cut to one page', "$dir/short", qr/truncated|ends before/ ],
    [ 'data.mdb empty', "$dir/zero", qr/truncated|ends before/ ],
    [ 'another secret', "$dir/foreign", qr/another secret/ ],
    [ 'the live database', $db,
      qr/^apikeyctl: restore: "\Q$db\E" is the live database itself; nothing was changed\n\z/ ],
    [ 'a link to the live database', "$dir/dblink2",
      qr/is the live database itself/ ],
);

push @bad, [ 'a record that does not decode', "$dir/undecodable",
             qr/is damaged: a record does not decode/ ],
           [ 'an id naming another key', "$dir/idswap",
             qr/is damaged: a key's id does not name it/ ],
           [ 'an id naming no key', "$dir/ghost",
             qr/is damaged: an id does not name a key that carries it/ ]
    if $have_load;

push @bad, [ 'format 1', "$dir/format1", qr/format version 1/ ],
           [ 'no apikey meta', "$dir/plain", qr/not initialized|initial/i ]
    if $have_load;

for my $r (@bad) {
    my ($name, $src, $msg) = @$r;

    ($rc, $out, $err) = $t->ctl('restore', '--force', $src);
    is($rc, 1, "restore refused, $name: exit code");
    like($err, $msg, "restore refused, $name: message");
    like($err, qr/nothing was changed\n\z/,
         "restore refused, $name: says nothing was changed");
    is($out, '', "restore refused, $name: no output");
    is($t->ctl_ok('export'), $live, "restore refused, $name: unchanged");
}

# a database with free pages, cut by a page: the check of its size
# lets it pass (the free pages may lie past the end), and the read of a
# page past the end is SIGBUS, caught: exit 1, not a crash

$t->init_db({ db => "$dir/freed" });
$t->ctl_ok({ db => "$dir/freed", input => "id,key\n"
             . join('', map { "m$_,freed-key-$_-0123456789\n" } 1 .. 3000) },
           'import', '-');
$t->ctl_ok({ db => "$dir/freed", input => join('', map { "m$_\n" }
                                                     1 .. 1500) },
           'revoke', '-');
system('cp', '-a', "$dir/freed", "$dir/cut") == 0 or die;
unlink "$dir/cut/lock.mdb";
truncate "$dir/cut/data.mdb", (-s "$dir/cut/data.mdb") - 4096 or die;

($rc, $out, $err) = $t->ctl('restore', '--force', "$dir/cut");
is($rc, 1, 'restore refused, a page cut off: exit code');
like($err, qr/^apikeyctl: restore: "\Q$dir\E\/cut": (data\.mdb ends before a page read from it \(truncated or damaged\?\)|.*)(; |\napikeyctl: restore: )nothing was changed\n\z/,
     'restore refused, a page cut off: message');
is($t->ctl_ok('export'), $live, 'restore refused, a page cut off: unchanged');

for my $r ([ 'no SRC', [], qr/expected the backup directory SRC/ ],
           [ 'an empty SRC', [ '' ], qr/empty SRC/ ],
           [ 'standard input', [ '-' ],
             qr/SRC is a directory; "-" \(standard input\) is not one/ ],
           [ 'two SRCs', [ "$dir/b1", "$dir/b2" ], qr/unexpected argument/ ],
           [ 'an unknown option', [ '--replace', "$dir/b1" ],
             qr/invalid option "--replace"/ ])
{
    my ($name, $args, $msg) = @$r;

    ($rc, $out, $err) = $t->ctl('restore', @$args);
    is($rc, 2, "restore usage, $name: exit code");
    like($err, $msg, "restore usage, $name: message");
}

is($t->ctl_ok('export'), $live, 'restore refused: database unchanged');
check_db('after refused restores');

# more than half of the keys removed: --force

my $csv = "id,key\n" . join('', map { "n$_,restore-key-$_-0123456789\n" }
                                    1 .. 20);
$t->ctl_ok({ input => $csv }, 'import', '-');
$live = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl('restore', "$dir/b1");
is($rc, 3, 'restore removing more than half: exit code');
like($err, qr/^apikeyctl: restore: restoring "\Q$dir\E\/b1" would remove 21 of the \d+ keys, more than half; nothing was changed \(add --force to do it\)\n\z/,
     'restore removing more than half: message');
is($t->ctl_ok('export'), $live, 'restore removing more than half: unchanged');

($rc, $out, $err) = $t->ctl('restore', '--force', "$dir/b1");
is($rc, 0, 'restore --force: exit code') or diag($err);
is($t->ctl_ok('export'), $saved, 'restore --force: export identical');
check_db('after restore --force');

# an empty backup: refused without --force

$t->init_db({ db => "$dir/emptydb" });
$t->ctl_ok({ db => "$dir/emptydb" }, 'backup', "$dir/b0");

($rc, $out, $err) = $t->ctl('restore', "$dir/b0");
is($rc, 3, 'restore of an empty backup: exit code');
like($err, qr/holds no keys: restoring it would remove every key; nothing was changed \(add --force to do it\)/,
     'restore of an empty backup: message');
is($t->ctl_ok('export'), $saved, 'restore of an empty backup: unchanged');

($rc, $out, $err) = $t->ctl('restore', '--force', "$dir/b0");
is($rc, 0, 'restore --force of an empty backup: exit code') or diag($err);
like($t->ctl_ok('export'), qr/^[^\n]*\n\z/,
     'restore --force of an empty backup: no keys left');
check_db('after restore of an empty backup');

($rc, $out, $err) = $t->ctl('restore', "$dir/b1");
is($rc, 0, 'restore into an empty database') or diag($err);
is($t->ctl_ok('export'), $saved, 'restore into an empty database: export');

# a live database as SRC, written while it is restored from: read
# through its lock file, each restore a consistent copy

$t->init_db({ db => "$dir/busy" });
$t->ctl_ok({ db => "$dir/busy" }, 'gen', '--count', '100');

my $writer = fork() // die;

if ($writer == 0) {
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';

    for my $i (1 .. 40) {
        system($t->{apikeyctl}, '-d', "$dir/busy", '-s', $t->secret(),
               'gen', '--count', '50');
    }

    POSIX::_exit(0);
}

my ($busy_ok, $busy_n) = (0, 0);

while (waitpid($writer, WNOHANG) != $writer) {
    ($rc, $out, $err) = $t->ctl('restore', '--force', "$dir/busy");
    $busy_n++;

    # each gen adds 50 keys in one transaction: never a part of one

    if ($rc == 0 && $out =~ /^restored (\d+) keys/ && ($1 - 100) % 50 == 0)
    {
        $busy_ok++;

    } else {
        diag("restore of a database being written: $rc $out $err");
    }
}

is($busy_ok, $busy_n, "restore of a database being written: $busy_n times");
($rc, $out, $err) = $t->ctl('restore', '--force', "$dir/busy");
is($t->ctl_ok('export'), $t->ctl_ok({ db => "$dir/busy" }, 'export'),
   'restore of a database being written: export identical at rest');
check_db('after restores of a database being written');

# a backup killed while it writes leaves no DEST: a big database, killed
# when its copy appears, and when the copy holds some megabytes

my $big = "$dir/big";

$t->init_db({ db => $big });
$t->ctl_ok({ db => $big }, 'gen', '--count', '200000');
my $bigexport = $t->ctl_ok({ db => $big }, 'export');

sub leftovers {
    opendir my $dh, $dir or die;
    my @l = grep { /^\.kb\.incomplete-/ } readdir $dh;
    closedir $dh;
    return @l;
}

for my $at (0, 1, 8 << 20, 24 << 20) {
    system('rm', '-rf', map { "$dir/$_" } leftovers());

    my $pid = fork() // die;

    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec $t->{apikeyctl}, '-d', $big, '-s', $t->secret(), 'backup',
             "$dir/kb" or die;
    }

    my ($end, $seen, $exited) = (time() + 30, -1, 0);

    while (time() < $end) {
        my ($tmp) = leftovers();

        if (defined $tmp) {
            my $size = -s "$dir/$tmp/data.mdb";
            if ($at == 0 || (defined $size && $size >= $at)) {
                kill 'KILL', $pid;
                $seen = $size // 0;
                last;
            }
        }

        if (waitpid($pid, WNOHANG) == $pid) {
            $exited = 1;
            last;
        }
    }

    waitpid($pid, 0) unless $exited;

    ok(!$exited && ($? & 127) == 9,
       "backup killed at $at bytes: killed (at $seen bytes)");
    ok(!-e "$dir/kb", "backup killed at $at bytes: no DEST");
    is(scalar(leftovers()), 1,
       "backup killed at $at bytes: only its hidden directory left");
}

# a backup past the file size limit: apikeyctl ignores SIGXFSZ, the
# write fails with EFBIG, and the failure removes what it wrote

SKIP: {
    skip 'no prlimit', 5 unless -x '/usr/bin/prlimit';

    system('rm', '-rf', map { "$dir/$_" } leftovers());
    ($rc, $out, $err) = $t->ctl({ db => $big }, 'backup', "$dir/kb");
    is($rc, 0, 'backup of the big database') or diag($err);
    my $size = -s "$dir/kb/data.mdb";
    system('rm', '-rf', "$dir/kb");

    my $cmd = join(' ', '/usr/bin/prlimit', '--fsize=' . int($size / 2),
                   $t->{apikeyctl}, '-d', $big, '-s', $t->secret(),
                   'backup', "$dir/kb", "2>$dir/fsize.err");
    system($cmd);
    is($? >> 8, 1, 'backup past the file size limit: exit 1, no signal')
        or diag("wait status $?");
    like(Apikey::Harness::slurp("$dir/fsize.err"),
         qr/^apikeyctl: backup: writing the copy into "\Q$dir\E\/\.kb\.incomplete-\w+" failed: File too large; no backup was made\n\z/,
         'backup past the file size limit: message');
    ok(!-e "$dir/kb", 'backup past the file size limit: no DEST');
    is(scalar(leftovers()), 0,
       'backup past the file size limit: no hidden directory left');
}

system('rm', '-rf', map { "$dir/$_" } leftovers());

($rc, $out, $err) = $t->ctl({ db => $big }, 'backup', "$dir/kb");
is($rc, 0, 'backup after the killed ones') or diag($err);
like($out, qr/^backed up 200000 keys to/, 'backup of the big database');

# restored over the small database and back

($rc, $out, $err) = $t->ctl('restore', '--force', "$dir/kb");
is($rc, 0, 'restore of the big backup') or diag($err);
is($t->ctl_ok('export'), $bigexport, 'restore of the big backup: export');
check_db('after restore of the big backup');

($rc, $out, $err) = $t->ctl('restore', '--force', "$dir/b1");
is($rc, 0, 'restore of the small backup over the big') or diag($err);
is($t->ctl_ok('export'), $saved, 'restore of the small backup: export');
check_db('after restore of the small backup over the big');

# no key anywhere in what the commands printed

unlike(join('', map { $t->ctl_ok($_) } 'export'), qr/\Q$key{a}\E/,
       'no plaintext key exported');

done_testing();
