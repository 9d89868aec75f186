#!/usr/bin/perl

# Tests what an operator may do to the files of a database while nginx
# serves with two workers: lock.mdb deleted, data.mdb replaced on its
# own, data.mdb truncated.  Whatever is done, a revoked key is never
# accepted again, no worker crashes, and each cause is logged, not each
# request; the database recovers by itself once it is whole again.

use strict;
use warnings;

use Test::More;

use File::Copy qw(copy);
use Time::HiRes qw(sleep time);

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my $db = $t->db();
my %key;
$key{$_} = $t->gen('--id', $_) for qw(a b c d keep gone);

$t->write_config(<<'EOF', workers => 2);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            empty_gif;
        }

        location = /pid {
            return 200 "$pid";
        }
    }
EOF

$t->start();

# both workers answer: connections are spread over them

my %pids;
for (1 .. 200) {
    $pids{$t->get('/pid')->{body}} = 1;
    last if keys %pids == 2;
}

is(scalar keys %pids, 2, 'two workers answer');

# the statuses of $n requests with a key, each on a new connection

sub statuses {
    my ($key, $n) = @_;
    return map { $t->get('/', 'X-API-Key' => $key)->{status} } 1 .. $n;
}

sub count {
    my ($status, @list) = @_;
    return scalar grep { $_ == $status } @list;
}

# all of $n requests get $status within $timeout seconds

sub settles {
    my ($key, $status, $timeout) = @_;

    my $end = time() + $timeout;

    while (time() < $end) {
        my @s = statuses($key, 10);
        return 1 if count($status, @s) == 10;
        sleep 0.2;
    }

    return 0;
}

is(count(200, statuses($key{a}, 10)), 10, 'valid before');

###############################################################################

# lock.mdb deleted, the "stale lock" habit: apikeyctl then makes a new
# one; the workers must leave the deleted one before anything is written
# with the new one, or they pick old meta pages and miss every other write

unlink "$db/lock.mdb" or die "unlink: $!";

for my $id (qw(a b c d)) {
    my ($rc, $out, $err) = $t->ctl('revoke', $id);
    is($rc, 0, "revoke $id after lock.mdb was deleted");

    my @s = statuses($key{$id}, 20);
    is(count(200, @s), 0, "revoked $id never accepted");
}

ok(-e "$db/lock.mdb", 'lock.mdb made again');

for my $id (qw(a b c d)) {
    ok(settles($key{$id}, 401, 5), "revoked $id rejected by every worker");
}

ok(settles($key{keep}, 200, 5), 'valid key accepted again');

like($t->error_log(),
     qr/lock\.mdb"(?: failed \(2: No such file| was replaced on its own)/,
     'deleted lock.mdb logged');

###############################################################################

# an old lock.mdb copied back in place (the same file, so the same inode):
# its transaction id is one commit old; a worker that has read the newer
# one knows the id went back, and never reads the old meta page

$key{$_} = $t->gen('--id', $_) for qw(e f);

ok(settles($key{e}, 200, 5), 'key e valid');

copy("$db/lock.mdb", $t->prefix() . '/lock.old') or die "copy: $!";

$t->ctl_ok('revoke', 'e');

ok(settles($key{e}, 401, 2), 'revoked e rejected');

# one commit behind is a commit in flight for 200 ms after the data file
# was written; a worker that has read nothing since knows no better

sleep 0.5;

copy($t->prefix() . '/lock.old', "$db/lock.mdb") or die "copy: $!";

{
    my @s;
    my $end = time() + 3;
    push @s, statuses($key{e}, 5) while time() < $end;

    is(count(200, @s), 0, 'revoked e never accepted through the old lock');
}

ok(settles($key{e}, 401, 6), 'revoked e rejected once whole again');
ok(settles($key{f}, 200, 6), 'key f accepted once whole again');

# lock.mdb truncated: 503, no crash; the lock file made again as init
# made it, with as many reader slots

my $lock_size = -s "$db/lock.mdb";

truncate "$db/lock.mdb", 0 or die "truncate: $!";

{
    my @s;
    my $end = time() + 1.5;
    push @s, statuses($key{f}, 5) while time() < $end;

    is(scalar(grep { $_ != 200 && $_ != 503 } @s), 0,
       'lock.mdb truncated: 200 or 503, nothing else');
}

ok(settles($key{f}, 200, 6), 'lock.mdb truncated: usable again');
is(-s "$db/lock.mdb", $lock_size, 'lock.mdb made again at its size');
unlike($t->error_log(), qr/exited on signal/, 'lock.mdb truncated: no crash');

###############################################################################

# data.mdb replaced on its own: a copy made before a revocation that
# happened elsewhere, moved over the live data.mdb under the old lock file

my $other = $t->prefix() . '/other';
mkdir $other or die "mkdir: $!";
chmod 0755, $other;

copy("$db/data.mdb", "$other/data.mdb") or die "copy: $!";

$t->ctl_ok({ db => $other }, 'revoke', 'gone');

copy("$other/data.mdb", "$db/data.mdb.new") or die "copy: $!";
chmod 0644, "$db/data.mdb.new";
rename "$db/data.mdb.new", "$db/data.mdb" or die "rename: $!";

# the workers read the old file they mapped until their check, at most
# a second later, finds the new one; from then on, never the old view
# of the new file through the old lock file

sleep 2.5;

{
    my @s;
    my $end = time() + 2;
    push @s, statuses($key{gone}, 5) while time() < $end;

    is(count(200, @s), 0, 'key revoked in the new data.mdb never accepted');
}

ok(settles($key{gone}, 401, 6), 'key revoked in the new data.mdb rejected');
ok(settles($key{keep}, 200, 6), 'valid key accepted with the new data.mdb');

like($t->error_log(), qr/data\.mdb" was replaced on its own/,
     'data.mdb replaced on its own logged');

###############################################################################

# data.mdb truncated, to half its size and to 64 KB: 503, never SIGBUS,
# and the database is usable again once its content is back

my @ids = map { sprintf 'bulk%04d', $_ } 1 .. 3000;
my $csv = "key,id\n" . join('', map { "k-$_-0123456789abcdef,$_\n" } @ids);

$t->ctl_ok({ input => $csv }, 'import', '-');

is(count(200, statuses('k-bulk1500-0123456789abcdef', 4)), 4,
   'bulk key valid');

my $size = -s "$db/data.mdb";
ok($size > 256 * 1024, 'data.mdb is large enough to truncate');

copy("$db/data.mdb", $t->prefix() . '/data.whole') or die "copy: $!";

for my $cut ($size / 2, 65536) {
    truncate "$db/data.mdb", $cut or die "truncate: $!";

    my @s;
    for my $n (1, 700, 1400, 2100, 2800, 3000) {
        push @s, statuses(sprintf('k-bulk%04d-0123456789abcdef', $n), 3);
    }

    is(scalar(grep { $_ != 200 && $_ != 503 } @s), 0,
       "truncated to $cut: 200 or 503, nothing else");

    ok(settles($key{keep}, 503, 4), "truncated to $cut: 503");

    my $log = $t->error_log();

    unlike($log, qr/exited on signal/, "truncated to $cut: no crash");
    like($log, qr/is shorter than the pages it claims|SIGBUS/,
         "truncated to $cut: logged");

    # the content put back in place (the same file): usable again

    copy($t->prefix() . '/data.whole', "$db/data.mdb") or die "copy: $!";

    ok(settles($key{keep}, 200, 6), "truncated to $cut: usable again");
    ok(settles($key{gone}, 401, 2), "truncated to $cut: revoked still");
}

# one line per cause and worker, not one per request

my $log = $t->error_log();
my $lines = () = $log =~ /is shorter than the pages it claims/g;

ok($lines <= 8, "truncation logged $lines times, not per request");

$t->stop();

$t->check_log();

done_testing();
