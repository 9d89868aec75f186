#!/usr/bin/perl

# Tests for apikeyctl when the files of the environment are damaged, by
# hand, while nginx serves with two workers: a truncated data.mdb (before
# and during a command), a data.mdb replaced on its own under a lock file
# in use, a deleted lock.mdb.  apikeyctl exits 1 with a message, never
# dies of SIGBUS, never writes on a stale view, and a lock.mdb it makes
# has the mode and group that nginx workers need.

use strict;
use warnings;

use Test::More;

use File::Copy qw(copy);
use Time::HiRes qw(sleep);

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

my $prefix = $t->prefix();
my $db = $t->db();
my $root = $> == 0;

my ($rc, $out, $err, $r);

# a truncated data.mdb: half of it, or 64 KB

$t->init_db();
$t->ctl_ok('gen', '--count', '5000');

my $good = "$prefix/good.mdb";
copy("$db/data.mdb", $good) or die "copy: $!";

my $size = -s $good;
ok($size > 4 * 65536, 'a database larger than 256 KB');

# found by the check as a transaction begins, or by the SIGBUS of the
# first page read past the end (the check counts LMDB's free pages, which
# may lie past the end)

my $truncated = qq{apikeyctl: open "$db": data.mdb is shorter than the }
                . q{pages it claims (truncated?): restore a backup into a }
                . q{new database directory ("apikeyctl -d NEW init", }
                . q{"apikeyctl -d NEW restore BACKUP") and move that }
                . q{directory into place};
my $sigbus = qq{apikeyctl: $db: data.mdb or lock.mdb ends before a page }
             . q{read from it (truncated or damaged?): restore it from a }
             . q{backup};

for my $cut (int($size / 2 / 4096) * 4096, 65536) {
    truncate("$db/data.mdb", $cut) or die "truncate: $!";

    for my $cmd (['list'], ['verify', 'ak_none'], ['gen'], ['export'],
                 ['revoke', 'none'])
    {
        ($rc, $out, $err) = $t->ctl(@$cmd);
        is($rc, 1, "@$cmd on data.mdb cut to $cut exit code");
        like($err, qr/^(?:\Q$truncated\E; nothing was (?:read|changed)
                        |\Q$sigbus\E)$/mx,
             "@$cmd on data.mdb cut to $cut message");
    }

    copy($good, "$db/data.mdb") or die "copy: $!";
}

truncate("$db/data.mdb", 4096) or die "truncate: $!";

($rc, $out, $err) = $t->ctl('gen');
is($rc, 1, 'gen on a data.mdb of one page exit code');
like($err, qr/^\Q$truncated\E$/m, 'gen on a data.mdb of one page message');
is(-s "$db/data.mdb", 4096, 'a data.mdb of one page is left alone');

copy($good, "$db/data.mdb") or die "copy: $!";

# truncated while a command reads it: list blocks on a full pipe

pipe(my $rd, my $wr) or die "pipe: $!";

my $pid = fork() // die "fork: $!";

if ($pid == 0) {
    close $rd;
    open STDOUT, '>&', $wr or die;
    open STDERR, '>', "$prefix/bus.err" or die;
    exec $t->{apikeyctl}, '-d', $db, '-s', $t->secret(), 'list', '--format',
        'csv' or die;
}

close $wr;
sleep 1;

truncate("$db/data.mdb", 65536) or die "truncate: $!";

my $listed = do { local $/; <$rd> };
close $rd;
waitpid($pid, 0);

is($? & 127 ? 128 + ($? & 127) : $? >> 8, 1,
   'list with data.mdb truncated meanwhile exit code');
is(Apikey::Harness::slurp("$prefix/bus.err"),
   "$sigbus\n",
   'list with data.mdb truncated meanwhile message');

copy($good, "$db/data.mdb") or die "copy: $!";

# nginx with two workers from here

my %id;
$id{$_} = $t->gen('--id', $_) for qw(a b c d e f);

$t->write_config(<<'EOF', workers => 2);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;

        location / {
            return 200 "backend\n";
        }
    }
EOF

$t->start();

# every worker must answer: many requests on fresh connections

sub statuses {
    my ($key) = @_;
    my %seen;
    $seen{$t->get('/', 'X-API-Key' => $key)->{status}}++ for 1 .. 20;
    return join ',', sort keys %seen;
}

is(statuses($id{a}), '200', 'a key is valid');

# lock.mdb deleted: the next apikeyctl makes it with the right group and
# mode, and waits for the workers to switch to it before writing

unlink "$db/lock.mdb" or die "unlink: $!";

my $note = qq{apikeyctl: $db: lock.mdb was missing and is made anew; }
           . q{waiting 2 seconds before writing, so that running nginx }
           . q{workers switch to it};

for my $n (qw(a b c d)) {
    ($rc, $out, $err) = $t->ctl('revoke', $n);
    is($rc, 0, "revoke $n after lock.mdb was deleted exit code");
    is($err, $n eq 'a' ? "$note\n" : '',
       "revoke $n after lock.mdb was deleted note");
}

is(mode("$db/lock.mdb"), $root ? 0660 : 0600, 'lock.mdb made anew mode');
is((stat "$db/lock.mdb")[5], (stat "$db/data.mdb")[5],
   'lock.mdb made anew group');

for my $n (qw(a b c d)) {
    is(statuses($id{$n}), '401', "key $n revoked after lock.mdb was deleted");
}

is(statuses($id{e}), '200', 'key e still valid after lock.mdb was deleted');

# a read command makes it too, with no wait

unlink "$db/lock.mdb" or die "unlink: $!";

($rc, $out, $err) = $t->ctl('show', 'e');
is($rc, 0, 'show after lock.mdb was deleted exit code');
is($err, '', 'show after lock.mdb was deleted no note');
is(mode("$db/lock.mdb"), $root ? 0660 : 0600, 'lock.mdb made by show mode');

sleep 2;

is(statuses($id{e}), '200', 'key e valid after lock.mdb was made by show');

# data.mdb replaced on its own, under the lock file nginx holds: a copy
# with one more commit (f revoked) moved over it; nginx is started again,
# so that its workers surely hold the lock.mdb of the directory

$t->stop();
$t->start();

is(statuses($id{f}), '200', 'key f valid before data.mdb is replaced');

mkdir "$prefix/db2" or die "mkdir: $!";
copy("$db/data.mdb", "$prefix/db2/data.mdb") or die "copy: $!";

($rc, $out, $err) = $t->ctl({ db => "$prefix/db2" }, 'revoke', 'f');
is($rc, 0, 'revoke f in the copy exit code');

rename "$prefix/db2/data.mdb", "$db/data.mdb" or die "rename: $!";

($rc, $out, $err) = $t->ctl('revoke', 'e');
is($rc, 1, 'revoke with a replaced data.mdb exit code');
is($err, qq{apikeyctl: open "$db": lock.mdb does not belong to data.mdb }
   . q{(one of them was deleted, replaced or copied on its own while in }
   . qq{use); nothing was changed\n},
   'revoke with a replaced data.mdb message');

($rc, $out, $err) = $t->ctl('gen', '--id', 'g');
is($rc, 1, 'gen with a replaced data.mdb exit code');

# a reader never calls the revoked key valid through the old lock file:
# refused (1), or, once the workers have let go of the old lock file
# and LMDB has made it right, unknown (4)

($rc, $out, $err) = $t->ctl({ input => "$id{f}\n" }, 'verify', '-');
ok($rc == 1 || $rc == 4, "verify with a replaced data.mdb: exit $rc");
isnt($out, "valid\n", 'verify with a replaced data.mdb: not valid');

$t->stop();

# once nothing holds the old lock file, the environment is whole again,
# and the revocation made in the copy was not lost

($rc, $out, $err) = $t->ctl({ input => "$id{f}\n" }, 'verify', '-');
is($rc, 4, 'key f revoked in the copy stays revoked');
is($out, "unknown\n", 'key f revoked in the copy is unknown');

($rc, $out, $err) = $t->ctl({ input => "$id{e}\n" }, 'verify', '-');
is($rc, 0, 'key e not revoked by the refused revoke');

($rc, $out, $err) = $t->ctl('show', 'g');
is($rc, 3, 'the refused gen stored nothing');

($rc, $out, $err) = $t->ctl('revoke', 'e');
is($rc, 0, 'revoke once whole again exit code');

$t->check_log();

done_testing();

###############################################################################

sub mode {
    return (stat $_[0])[2] & 07777;
}
