#!/usr/bin/perl

# Tests nginx workers running as www-data on a database made by
# "apikeyctl init --user www-data", under load (issue 9): two workers
# answer every key right while a writer, apikeyctl as root, adds and
# revokes keys; and www-data can do exactly what a reader needs and no
# more.  The files as init leaves them: the directory root:www-data
# 2750, data.mdb root:www-data 0640, lock.mdb root:www-data 0660 (LMDB
# readers take their slots in it), the secret root 0600 (read by the
# master only).  As www-data: data.mdb and lock.mdb open for reading,
# lock.mdb for writing; data.mdb not for writing; no file made,
# renamed, removed or linked in the directory; no mode changed; the
# secret not read; apikeyctl fails and changes nothing.  Each worker
# holds data.mdb open read-only.  The writes of root leave the owners
# and modes as they were, and no other file appears.

use strict;
use warnings;

use Test::More;

use Fcntl qw(O_RDONLY O_RDWR O_WRONLY O_CREAT O_EXCL O_ACCMODE);
use POSIX qw();
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled);
use Apikey::Load qw(unknown_keys malformed_keys);

my $t = Apikey::Harness->new()->require_all();

plan(skip_all => 'needs root (workers run as www-data)') if $> != 0;

my @pw = getpwnam('www-data');
plan(skip_all => 'no user www-data') unless @pw;
my ($uid, $gid) = @pw[2, 3];

my @as = ('setpriv', '--reuid', $uid, '--regid', $gid, '--clear-groups');
plan(skip_all => 'setpriv not usable')
    if system("@as true >/dev/null 2>&1") != 0;

my $dir = $t->prefix();
my $db = $t->db();

# www-data reaches the prefix: each directory above it searchable

for (my $d = $dir; $d ne '/' && $d ne ''; $d =~ s{/[^/]*$}{}) {
    plan(skip_all => "$d not searchable by others") unless (stat $d)[2] & 1;
}

$t->ctl_ok('init', '--user', 'www-data');

my %key;

$key{"V$_"} = $t->gen('--id', "V$_") for 1 .. 5;
$key{"R$_"} = $t->gen('--id', "R$_") for 1 .. 100;

# another database's keys, and malformed ones

my @unknown = unknown_keys($t, 3);

my @malformed = malformed_keys($key{V1}, $key{V2}, 3);

$t->ctl_ok({ input => "id,key,expires\n"
                      . "E1,www-data-expired-key-1,2020-01-01T00:00:00Z\n" },
           'import', '-');

# the files as init made them

sub mode {
    my ($file) = @_;

    my @st = stat $file or return "$file: $!";

    return sprintf('%04o %s:%s', $st[2] & 07777,
                   scalar getpwuid($st[4]), scalar getgrgid($st[5]));
}

my %want = ($db => '2750 root:www-data',
            "$db/data.mdb" => '0640 root:www-data',
            "$db/lock.mdb" => '0660 root:www-data',
            $t->secret() => '0600 root:root');

is(mode($_), $want{$_}, "init --user: $_") for sort keys %want;

$t->write_config(<<"EOF", workers => 2, user => 'www-data');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            add_header X-Worker \$pid always;
            empty_gif;
        }
    }
EOF

$t->start();
$t->wait_workers();

# the workers: the master's children, as www-data

my @workers = $t->workers();

is(scalar @workers, 2, 'two workers');

for my $pid (@workers) {
    my $status = Apikey::Harness::slurp("/proc/$pid/status");
    my ($ruid, $euid) = $status =~ /^Uid:\s+(\d+)\s+(\d+)/m;
    my ($rgid, $egid) = $status =~ /^Gid:\s+(\d+)\s+(\d+)/m;

    is("$ruid $euid $rgid $egid", "$uid $uid $gid $gid",
       "worker $pid runs as www-data");
}

my $load = Apikey::Load->new(port => $t->port(0), dir => "$dir/load",
                             clients => 3);

$load->key($_, $key{$_}, 'valid', 200) for map { "V$_" } 1 .. 5;
$load->key($_, $key{$_}, 'revoked', 200) for map { "R$_" } 1 .. 100;
$load->key('E1', 'www-data-expired-key-1', 'expired', 401);
$load->key_list('U', 'unknown', 401, @unknown);
$load->key_list('M', 'malformed', 401, @malformed);

$load->start();
$load->wait_requests(300);

# what a worker may do, tried as www-data while nginx serves: one line a
# try, "name ok" or "name errno-name"

my $probe = <<'EOF';
use strict;
use Errno;
use Fcntl qw(O_RDONLY O_RDWR O_WRONLY O_CREAT O_EXCL);
my ($db, $secret) = @ARGV;
my %name = map { Errno->$_ => $_ } grep { eval { Errno->$_; 1 } }
           qw(EACCES EPERM EROFS ENOENT EEXIST);
sub try {
    my ($what, $ok) = @_;
    print "$what ", ($ok ? 'ok' : $name{$! + 0} // "errno " . ($! + 0)),
          "\n";
}
my $fh;
try('read data.mdb', sysopen($fh, "$db/data.mdb", O_RDONLY)
                     && sysread($fh, my $b1, 4096));
try('read lock.mdb', sysopen($fh, "$db/lock.mdb", O_RDONLY)
                     && sysread($fh, my $b2, 64));
try('open lock.mdb for writing', sysopen($fh, "$db/lock.mdb", O_RDWR));
try('open data.mdb for writing', sysopen($fh, "$db/data.mdb", O_WRONLY));
try('open data.mdb read-write', sysopen($fh, "$db/data.mdb", O_RDWR));
try('create a file', sysopen($fh, "$db/new.mdb", O_WRONLY|O_CREAT|O_EXCL,
                             0600));
try('make a directory', mkdir("$db/sub"));
try('remove data.mdb', unlink("$db/data.mdb"));
try('remove lock.mdb', unlink("$db/lock.mdb"));
try('rename data.mdb', rename("$db/data.mdb", "$db/data.old"));
try('link data.mdb', link("$db/data.mdb", "$db/data.link"));
try('symlink', symlink("/tmp", "$db/evil"));
try('chmod data.mdb', chmod(0666, "$db/data.mdb"));
try('chmod lock.mdb', chmod(0666, "$db/lock.mdb"));
try('chmod directory', chmod(0777, $db));
try('truncate data.mdb', truncate("$db/data.mdb", 0));
try('read the secret', sysopen($fh, $secret, O_RDONLY));
try('list the directory', opendir(my $dh, $db));
EOF

Apikey::Harness::write_file("$dir/probe.pl", $probe);
chmod 0644, "$dir/probe.pl";

my $out = `@as perl $dir/probe.pl $db @{[ $t->secret() ]} 2>&1`;
my %got = map { /^(.*) (\S+)$/ } split /\n/, $out;

my %expect = (
    'read data.mdb' => 'ok',
    'read lock.mdb' => 'ok',
    'open lock.mdb for writing' => 'ok',
    'open data.mdb for writing' => 'EACCES',
    'open data.mdb read-write' => 'EACCES',
    'create a file' => 'EACCES',
    'make a directory' => 'EACCES',
    'remove data.mdb' => 'EACCES',
    'remove lock.mdb' => 'EACCES',
    'rename data.mdb' => 'EACCES',
    'link data.mdb' => 'EACCES',
    'symlink' => 'EACCES',
    'chmod data.mdb' => 'EPERM',
    'chmod lock.mdb' => 'EPERM',
    'chmod directory' => 'EPERM',
    'truncate data.mdb' => 'EACCES',
    'read the secret' => 'EACCES',
    'list the directory' => 'ok',
);

# a hard link to a file of another owner: EPERM first where
# fs.protected_hardlinks is set, else EACCES from the directory

$got{'link data.mdb'} =~ s/^EPERM$/EACCES/ if defined $got{'link data.mdb'};

for my $what (sort keys %expect) {
    is($got{$what} // '(not tried)', $expect{$what}, "as www-data: $what")
        or diag($out);
}

# apikeyctl as www-data: no secret, so nothing read or changed

my $ctl = "$t->{apikeyctl} -d $db -s @{[ $t->secret() ]}";

$out = `@as $ctl revoke V1 2>&1`;
isnt($? >> 8, 0, 'apikeyctl revoke as www-data fails');
like($out, qr/secret/, 'apikeyctl as www-data: the secret named')
    or diag($out);

# the writer: root, a key added and a key revoked each turn, under load

my @failed;

for my $n (1 .. 60) {
    my ($rc, $o, $err) = $t->ctl('gen', '--id', "G$n");
    push @failed, "gen G$n: exit $rc: $err" if $rc != 0;

    if ($rc == 0) {
        chomp $o;
        $load->key("G$n", $o, 'added', 200);
    }

    ($rc, $o, $err) = $load->change({ "R$n" => 401 },
                                    sub { $t->ctl('revoke', "R$n") },
                                    name => 'revoke');
    push @failed, "revoke R$n: exit $rc: $err" if $rc != 0;

    sleep 0.02;
}

is(join("\n", @failed), '', 'every gen and revoke as root succeeded');

$load->wait_requests(500);

# each worker holds data.mdb read-only and lock.mdb read-write, and no
# other file of the database

sub open_files {
    my ($pid) = @_;

    my %files;

    for my $fd (glob "/proc/$pid/fd/*") {
        my $path = readlink $fd // next;
        next unless index($path, "$db/") == 0;

        my ($n) = $fd =~ m{/(\d+)$};
        my ($flags) = Apikey::Harness::slurp("/proc/$pid/fdinfo/$n")
                      =~ /^flags:\s+(\d+)/m;
        my $acc = oct($flags) & O_ACCMODE;

        $files{substr($path, length("$db/"))}
            = $acc == O_RDONLY ? 'ro' : $acc == O_RDWR ? 'rw' : 'wo';
    }

    return join(' ', map { "$_:$files{$_}" } sort keys %files);
}

for my $pid (@workers) {
    is(open_files($pid), 'data.mdb:ro lock.mdb:rw',
       "worker $pid: data.mdb read-only, lock.mdb read-write");
}

$load->stop();

my $s = $load->ok(name => 'www-data', min => 500, retried => 0);

cmp_ok($s->{classes}{'revoked 401'} // 0, '>', 0, 'revoked keys seen 401');
cmp_ok($s->{classes}{'added 200'} // 0, '>', 0, 'added keys seen 200');

# after root's writes: the same owners and modes, no other file

is(mode($_), $want{$_}, "after the writes: $_") for sort keys %want;

opendir(my $dh, $db) or die "$db: $!";
is(join(' ', sort grep { !/^\.\.?$/ } readdir $dh), 'data.mdb lock.mdb',
   'no other file in the database directory');
closedir $dh;

my ($rc, $o, $err) = $t->ctl('check');
is($rc, 0, 'apikeyctl check') or diag("$o$err");

$t->stop();
$t->check_log();

done_testing();
