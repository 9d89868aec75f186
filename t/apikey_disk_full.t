#!/usr/bin/perl

# Tests a disk that fills during writes while nginx serves under load,
# with two workers (issue 9): the database lives on a tmpfs of 1 MB; an
# import of 20,000 keys, a "gen --count 20000" and a restore of a backup
# of 20,000 keys cannot fit.  Each fails with exit 1 and a message that
# names the full disk (LMDB reports a write cut short as EIO; apikeyctl
# looks at the file system and says "no space left"), and that nothing
# was changed, without a key in it, and gen prints no key.  nginx keeps
# answering from the previous keys, every answer right; the database
# holds exactly the previous keys and "check" is clean; a revoke still
# works on the full disk (the failed commits grew data.mdb, and LMDB
# writes into those pages again).  Once the tmpfs is made larger, the
# same import succeeds and its keys are served.
#
# Needs root (mount); skipped otherwise, or when tmpfs cannot be
# mounted.  The tmpfs is unmounted at the end, whatever happens.

use strict;
use warnings;

use Test::More;

use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled);
use Apikey::Load qw(word unknown_keys malformed_keys);

my $t = Apikey::Harness->new()->require_all();

plan(skip_all => 'needs root (mount -t tmpfs)') if $> != 0;

my $dir = $t->prefix();
my $mnt = "$dir/mnt";

mkdir $mnt or die "$mnt: $!";

my $out = `mount -t tmpfs -o size=1m,mode=0755 apikey-test $mnt 2>&1`;
plan(skip_all => "mount -t tmpfs failed: $out") if $? != 0;

my $mounted = 1;

END {
    # nginx maps data.mdb: stopped first, then the tmpfs let go

    if ($mounted) {
        $t->stop() if $t;
        system('umount', $mnt) == 0 or system('umount', '-l', $mnt);
    }
}

$t->{db} = "$mnt/db";

$t->init_db();

# the keys before: made by gen, imported, expired

my %key;

$key{"V$_"} = $t->gen('--id', "V$_") for 1 .. 5;
$key{"R$_"} = "diskfull-R$_-" . word() for 1 .. 10;

$t->ctl_ok({ input => "id,key,expires\n"
                      . join('', map { "R$_,$key{\"R$_\"},\n" } 1 .. 10)
                      . "E1,diskfull-E1-" . word()
                      . ",2020-01-01T00:00:00Z\n" },
           'import', '-');

# unknown keys: another database's; malformed ones

my @unknown = unknown_keys($t, 3);

my @malformed = malformed_keys($key{V1}, $key{V2}, 3);

# what cannot fit: 20,000 keys, two of them sent by the clients; and a
# backup of as many keys, without the V keys (a restore that went
# through would make them 401)

my @big = ("id,key\n");
$key{"N$_"} = "diskfull-N$_-" . word() for 1 .. 2;
push @big, map { "N$_,$key{\"N$_\"}\n" } 1 .. 2;
push @big, map { "F$_,diskfull-F$_-" . word() . "\n" } 1 .. 20000;

my $big = join('', @big);

$t->init_db({ db => "$dir/big" });
$t->ctl_ok({ db => "$dir/big", input => $big }, 'import', '-');

my $before = $t->ctl_ok('export');
my $data_before = -s "$mnt/db/data.mdb";

$t->write_config(<<"EOF", workers => 2);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            empty_gif;
        }
    }
EOF

$t->start();

my $load = Apikey::Load->new(port => $t->port(0), dir => "$dir/load",
                             clients => 3);

$load->key($_, $key{$_}, 'valid', 200) for map { "V$_" } 1 .. 5;
$load->key($_, $key{$_}, 'revoked', 200) for map { "R$_" } 1 .. 10;
$load->key($_, $key{$_}, 'imported', 401) for map { "N$_" } 1 .. 2;
$load->key_list('U', 'unknown', 401, @unknown);
$load->key_list('M', 'malformed', 401, @malformed);

$load->start();
$load->wait_requests(300);

# each write that cannot fit: exit 1, the full disk named, nothing
# changed, no key shown

sub no_key {
    my ($text) = @_;
    return $text !~ /diskfull-|ak_[0-9A-Za-z]{20}/;
}

my @full = (
    [ 'import', { input => $big }, 'import', '-' ],
    [ 'gen', {}, 'gen', '--count', '20000' ],
    [ 'restore', {}, 'restore', '--force', "$dir/big" ],
);

for my $w (@full) {
    my ($name, $opts, @args) = @$w;

    my ($rc, $o, $err) = $t->ctl($opts, @args);

    is($rc, 1, "$name on a full disk: exit 1");
    my $want = "apikeyctl: $name: mdb_txn_commit() failed: no space left"
               . " on the device of \"$mnt/db\"";

    like($err, qr/^\Q$want\E .*; nothing was changed$/m,
         "$name on a full disk: the full disk named, nothing changed")
        or diag($err);
    is($o, '', "$name on a full disk: nothing on standard output");
    ok(no_key($err), "$name on a full disk: no key in the message");

    $load->wait_requests(200);
}

my ($rc, $o, $err) = $t->ctl('check');
is($rc, 0, 'check after the failed writes') or diag("$o$err");

is($t->ctl_ok('export'), $before, 'the database holds the keys it held');

my $data_full = -s "$mnt/db/data.mdb";

# a revoke on the full disk: into the pages the failed commits wrote

($rc, $o, $err) = $load->change({ R1 => 401 },
                                sub { $t->ctl('revoke', 'R1') },
                                name => 'revoke');
is($rc, 0, 'revoke on the full disk') or diag($err);

$load->wait_requests(300);

# room again: the same import goes through, and its keys are served

my $df = `df -k $mnt`;

$out = `mount -o remount,size=64m $mnt 2>&1`;
is($?, 0, 'tmpfs made larger') or diag($out);

($rc, $o, $err) = $load->change({ N1 => 200, N2 => 200 },
                                sub { $t->ctl({ input => $big },
                                              'import', '-') },
                                name => 'import');
is($rc, 0, 'import with room again') or diag($err);
like($o, qr/^imported 20002 keys: 20002 added/, 'import summary');

$load->wait_requests(500);
$load->stop();

my $s = $load->ok(name => 'disk full', min => 1000, retried => 0);

cmp_ok($s->{classes}{'imported 200'} // 0, '>', 0,
       'imported keys seen 200 once imported');
cmp_ok($s->{classes}{'revoked 401'} // 0, '>', 0, 'revoked key seen 401');

($rc, $o, $err) = $t->ctl('check');
is($rc, 0, 'check after the import') or diag("$o$err");

diag("data.mdb: $data_before bytes before, $data_full after the failed"
     . " writes, " . (-s "$mnt/db/data.mdb") . " after the import;"
     . " the full tmpfs:\n$df");

$t->stop();
$t->check_log();

done_testing();
