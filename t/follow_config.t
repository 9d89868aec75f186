#!/usr/bin/perl

# Tests the configuration errors of apikeyctl follow, which a restart
# would not mend and which systemd does not restart: a CONNINFO libpq
# cannot parse is a usage error (exit 2) said without the string (it
# may hold a password, which libpq's own message quotes); a database
# made with another secret exits 3.  Neither retries.  A PostgreSQL
# that is away is not a configuration error: exit 1 with --once.  The
# schema's limits are in bytes (octet_length()), as the nodes count
# them: a row the nodes would refuse is refused at INSERT.  libpq's
# messages are logged with the values of the conninfo that may hold a
# secret masked.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);
use Apikey::Pg;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $why = Apikey::Pg::unavailable();
plan skip_all => $why if $why;

$t->init_db();

my $pg = Apikey::Pg->new();
$pg->psql($t->ctl_ok('follow', '--print-schema'));

# the schema's limits are in bytes, as the nodes': 256 x U+00E9 (512
# bytes in UTF-8) in subject is refused at INSERT, 128 of them (256
# bytes) taken; 65 in id (130 bytes) refused

my $e = "\xc3\xa9";
my $hash = "decode(repeat('ab', 32), 'hex')";

for my $row (["'k1', repeat('$e', 256)", 0, 'subject of 256 x U+00E9'],
             ["'k1', repeat('$e', 128)", 1, 'subject of 128 x U+00E9'],
             ["repeat('$e', 65), NULL", 0, 'id of 65 x U+00E9'])
{
    my ($values, $taken, $what) = @$row;

    my ($rc, $out) = $pg->psql("INSERT INTO apikey_keys (hash, id, subject) "
                               . "VALUES ($hash, $values)", may_fail => 1);

    if ($taken) {
        is($rc, 0, "$what: taken") or diag($out);
    } else {
        isnt($rc, 0, "$what: refused by PostgreSQL at INSERT");
        like($out, qr/violates check constraint/, "$what: by its CHECK");
    }
}

$pg->psql("DELETE FROM apikey_keys");


# apikeyctl follow, stopped after 20 s if it retries

my $err_file = $t->prefix() . '/follow.err';

sub run_follow {
    my ($secret, @args) = @_;

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $err_file or die;
        exec 'timeout', '-s', 'KILL', Apikey::Harness::scaled(20),
             $t->{apikeyctl}, '-d', $t->db(), '-s', $secret, 'follow', @args
            or die "exec: $!";
    }

    waitpid($pid, 0);

    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;

    return ($rc, Apikey::Harness::slurp($err_file));
}

# a CONNINFO libpq cannot parse

my @bad = (
    [ 'postgresql://u:p%ss@h/db', 'p%ss', 'a URI, a bad percent escape' ],
    [ "host=h password='s3cr3t", 's3cr3t', 'an unterminated quote' ],
    [ 'host=h pass=w0rdy', 'w0rdy', 'an unknown keyword' ],
    [ 'postgres://h/db?sslpassword=zz%zz', 'zz%zz', 'postgres://' ],
);

for my $b (@bad) {
    my ($conninfo, $secret_part, $name) = @$b;

    for my $once (['--once'], []) {
        my ($rc, $err) = run_follow($t->secret(), @$once, $conninfo);
        my $what = "$name" . (@$once ? ' (--once)' : '');

        is($rc, 2, "$what: exit 2, at once");
        like($err, qr/^apikeyctl: follow: CONNINFO is not a valid libpq connection string or URI \(not shown: it may hold a password\)$/m,
             "$what: the message");
        unlike($err, qr/\Q$secret_part\E/, "$what: nothing of it shown");
    }
}

# a database name alone is what libpq takes it for

my ($rc, $err) = run_follow($t->secret(), '--once', 'no_such_db');
is($rc, 1, 'a database name: tried (exit 1 with --once)');
like($err, qr/connect to PostgreSQL/, 'a database name: libpq says why');

# libpq's messages quote values of the conninfo: those that may hold a
# secret are masked.  An unescaped "@" in the password of a URI puts
# its end into the host; a secret put in sslmode is quoted by libpq
# ("invalid sslmode value"); an ordinary host is still named.

my ($pghost, $pgport) = $pg->conninfo() =~ /host=(\S+) port=(\d+)/;

for my $c (
    [ "postgresql://apikey_follow:p\@ssXYZZYw0rd\@localhost:$pgport/app",
      qr/ssXYZZY|w0rd/, 'an "@" in the password of a URI' ],
    [ "host=$pghost port=$pgport sslmode=s3cr3tXYZZY",
      qr/s3cr3t/, 'a secret in sslmode' ])
{
    my ($conninfo, $secret_re, $name) = @$c;

    local $ENV{APIKEY_FOLLOW_CONNINFO} = $conninfo;

    my ($rc, $err) = run_follow($t->secret(), '--once');

    is($rc, 1, "$name: exit 1");
    like($err, qr/^apikeyctl: follow: connect to PostgreSQL: .*\Q(not shown)\E/m,
         "$name: libpq's message, the value masked") or diag($err);
    unlike($err, $secret_re, "$name: nothing of the secret shown");
}

($rc, $err) = run_follow($t->secret(), '--once',
                         'host=db.invalid port=5432 dbname=app');
is($rc, 1, 'an unknown host: exit 1');
like($err, qr/^apikeyctl: follow: connect to PostgreSQL: could not translate host name "db\.invalid" to address/m,
     'an unknown host: named') or diag($err);

# a good CONNINFO, PostgreSQL there: a first synchronisation

($rc, $err) = run_follow($t->secret(), '--once', $pg->conninfo());
is($rc, 0, 'the right secret: exit 0') or diag($err);

# a database made with another secret

my $other = $t->prefix() . '/other.secret';
write_file($other, unpack('H*', join '', map { chr int rand 256 } 1 .. 32)
                   . "\n");

for my $once (['--once'], []) {
    ($rc, $err) = run_follow($other, @$once, $pg->conninfo());
    my $what = 'another secret' . (@$once ? ' (--once)' : '');

    is($rc, 3, "$what: exit 3, not restarted by the unit");
    like($err, qr/^apikeyctl: open ".*": .*secret/m, "$what: the reason");
}

# the unit does not restart 2 and 3

like(Apikey::Harness::slurp($t->{root} . '/tools/apikeyctl-follow@.service'),
     qr/^RestartPreventExitStatus=2 3$/m, 'the unit restarts neither 2 nor 3');

done_testing();
