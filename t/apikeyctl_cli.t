#!/usr/bin/perl

# Tests for apikeyctl alone, without nginx: init, gen, verify, list,
# show, revoke, expire, export and import, the help text, exit codes,
# error messages, and that no plaintext key is ever stored or printed
# where it should not be.

use strict;
use warnings;

use Test::More;

use JSON::PP;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $prefix = $t->prefix();
my $db = $t->db();
my $secret = $t->secret();
my $root = $> == 0;
my $json = JSON::PP->new();

my ($rc, $out, $err);

# init

($rc, $out, $err) = $t->ctl('init');
my $init = qq{initialized "$db" (secret "$secret"};

is($rc, 0, 'init exit code');
like($out, qr/^\Q$init\E(?: created\)|\) created)$/m, 'init output');
is($err, '', 'init stderr');
ok(-f $secret, 'init creates the secret');
is(mode($secret), 0600, 'secret mode 0600');
like(slurp($secret), qr/^[0-9a-f]{64}\n\z/, 'secret is 64 hex');
ok(-f "$db/data.mdb", 'init creates data.mdb');
ok(-f "$db/lock.mdb", 'init creates lock.mdb');
is(mode($db), 0700, 'database directory mode 0700');
is(mode("$db/data.mdb"), 0600, 'data.mdb mode 0600');
is(mode("$db/lock.mdb"), 0600, 'lock.mdb mode 0600');

my $secret_text = slurp($secret);
my $dump = dump_db($db);

($rc, $out, $err) = $t->ctl('init');
is($rc, 0, 'init again exit code');
like($out, qr/^apikeyctl: database "\Q$db\E" already initialized$/m,
     'init again output');
is(slurp($secret), $secret_text, 'init again keeps the secret');
ok(dump_db($db) eq $dump, 'init again keeps the database');

($rc, $out, $err) = $t->ctl({ db => "$prefix/db-second" }, 'init');
is($rc, 0, 'init with an existing secret exit code');
like($out, qr/^\Qinitialized "$prefix\/db-second" (secret "$secret")\E$/m,
     'init with an existing secret output');
is(slurp($secret), $secret_text, 'init with an existing secret keeps it');

SKIP: {
    skip 'init --user needs root', 6 unless $root;

    my $udb = "$prefix/db-user";
    my $gid = (getpwnam('nobody'))[3];

    ($rc, $out, $err) = $t->ctl({ db => $udb }, 'init', '--user', 'nobody');
    is($rc, 0, 'init --user exit code');
    is(mode($udb), 02750, 'init --user directory mode 02750');
    is(mode("$udb/data.mdb"), 0640, 'init --user data.mdb mode 0640');
    is(mode("$udb/lock.mdb"), 0660, 'init --user lock.mdb mode 0660');
    is(join(' ', map { (stat $_)[5] } $udb, "$udb/data.mdb", "$udb/lock.mdb"),
       "$gid $gid $gid", 'init --user group');
    is(join(' ', map { (stat $_)[4] } $udb, "$udb/data.mdb", "$udb/lock.mdb"),
       "$> $> $>", 'init --user owner');
}

($rc, $out, $err) = $t->ctl({ db => "$prefix/db-nouser" }, 'init', '--user',
                            'no-such-user-here');
is($rc, 2, 'init unknown user exit code');
like($err, qr/^apikeyctl: /, 'init unknown user message');

# gen

my @keys;

($rc, $out, $err) = $t->ctl('gen');
is($rc, 0, 'gen exit code');
like($out, qr/^ak_[0-9A-Za-z]{38}\n\z/, 'gen prints one key');
is($err, '', 'gen stderr');
push @keys, $out =~ /^(\S+)/;

($rc, $out, $err) = $t->ctl('gen', '--prefix', 'ak_live');
is($rc, 0, 'gen prefix exit code');
like($out, qr/^ak_live_[0-9A-Za-z]{38}\n\z/, 'gen prefix ak_live');
push @keys, $out =~ /^(\S+)/;

($rc, $out, $err) = $t->ctl('gen', '--id', 'alice', '--subject', 'Alice A',
                            '--scopes', 'a,b', '--plan', 'gold',
                            '--expires', '2030-01-01T00:00:00Z',
                            '--format', 'json');
is($rc, 0, 'gen json exit code');
like($out, qr/^\{.*\}\n\z/, 'gen json one line');

my $j = eval { $json->decode($out) } // {};

is(join(',', sort keys %$j),
   'created,expires,hint,id,key,not_before,plan,scopes,subject',
   'gen json fields');
like($j->{key} // '', qr/^ak_[0-9A-Za-z]{38}\z/, 'gen json key');
is($j->{id}, 'alice', 'gen json id');
is($j->{subject}, 'Alice A', 'gen json subject');
is($j->{scopes}, 'a,b', 'gen json scopes');
is($j->{plan}, 'gold', 'gen json plan');
is($j->{expires}, '2030-01-01T00:00:00Z', 'gen json expires');
ok(exists $j->{not_before} && !defined $j->{not_before},
   'gen json not_before null');
is($j->{hint}, substr($j->{key} // '', 0, 7) . '...', 'gen json hint');
like($j->{created} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\z/,
     'gen json created');

my $alice = $j->{key} // '';
push @keys, $alice;

($rc, $out, $err) = $t->ctl('gen', '--count', '5');
is($rc, 0, 'gen count exit code');

my @five = split /\n/, $out;
is(scalar(@five), 5, 'gen count 5 lines');
is(scalar(grep { /^ak_[0-9A-Za-z]{38}\z/ } @five), 5, 'gen count 5 keys');
is(scalar(keys %{{ map { $_ => 1 } @five }}), 5, 'gen count 5 distinct');
push @keys, @five;

$dump = dump_db($db);

($rc, $out, $err) = $t->ctl('gen', '--id', 'alice');
is($rc, 3, 'gen duplicate id exit code');
is($out, '', 'gen duplicate id prints no key');
like($err, qr/^apikeyctl: gen: id "alice" already exists$/m,
     'gen duplicate id message');
ok(dump_db($db) eq $dump, 'gen duplicate id changes nothing');

($rc, $out, $err) = $t->ctl('gen', '--id', 'bob', '--count', '2');
is($rc, 2, 'gen id with count exit code');

($rc, $out, $err) = $t->ctl('gen', '--prefix', 'AK');
is($rc, 2, 'gen bad prefix exit code');
is($out, '', 'gen bad prefix prints no key');
like($err, qr/^apikeyctl: gen: invalid prefix "AK"/m, 'gen bad prefix message');

($rc, $out, $err) = $t->ctl('gen', '--prefix', 'bad-prefix');
is($rc, 2, 'gen bad prefix dash exit code');

# verify

($rc, $out, $err) = $t->ctl('verify', $alice);
is($rc, 0, 'verify argument exit code');
is($out, "valid id=alice\n", 'verify argument output');

($rc, $out, $err) = $t->ctl({ input => "$alice\n" }, 'verify');
is($rc, 0, 'verify stdin exit code');
is($out, "valid id=alice\n", 'verify stdin output');

($rc, $out, $err) = $t->ctl({ input => "$alice\n" }, 'verify', '-');
is($rc, 0, 'verify dash exit code');
is($out, "valid id=alice\n", 'verify dash output');

my $gone = gen_key('--id', 'gone');
$t->ctl_ok('revoke', 'gone');

($rc, $out, $err) = $t->ctl('verify', $gone);
is($rc, 4, 'verify unknown exit code');
is($out, "unknown\n", 'verify unknown output');

($rc, $out, $err) = $t->ctl('verify', 'bad');
is($rc, 4, 'verify malformed exit code');
is($out, "malformed\n", 'verify malformed output');

my $typo = $alice;
substr($typo, 10, 1) = substr($typo, 10, 1) eq 'x' ? 'y' : 'x';

($rc, $out, $err) = $t->ctl({ input => "$typo\n" }, 'verify');
is($rc, 4, 'verify bad checksum exit code');
is($out, "malformed\n", 'verify bad checksum output');

my $dis = gen_key('--id', 'dis');
$t->ctl_ok('disable', 'dis');

($rc, $out, $err) = $t->ctl('verify', $dis);
is($rc, 4, 'verify disabled exit code');
is($out, "disabled id=dis\n", 'verify disabled output');

my $old = gen_key('--id', 'old');
$t->ctl_ok('expire', 'old', '--at', 'now');

($rc, $out, $err) = $t->ctl('verify', $old);
is($rc, 4, 'verify expired exit code');
is($out, "expired id=old\n", 'verify expired output');

my $future = gen_key('--id', 'future', '--not-before', '1d');

($rc, $out, $err) = $t->ctl('verify', $future);
is($rc, 4, 'verify not yet valid exit code');
is($out, "not_yet_valid id=future\n", 'verify not yet valid output');

push @keys, $gone, $dis, $old, $future;

# list

my @ids = qw(alice dis future old);

($rc, $out, $err) = $t->ctl('list');
is($rc, 0, 'list exit code');
like($out, qr/\AID +SUBJECT +PLAN +SCOPES +STATUS +EXPIRES +HINT\n/,
     'list table header');
my $expires = '2030-01-01T00:00:00Z';

like($out, qr/^alice +Alice A +gold +a,b +valid +$expires +\Q$j->{hint}\E$/m,
     'list table alice');
is(scalar(grep { $out =~ /^\Q$_\E /m } @ids), scalar(@ids), 'list table ids');
like($out, qr/^dis .* disabled /m, 'list table disabled');
is(scalar(() = $out =~ /\n/g), 1 + 3 + 5 + 3, 'list table rows');
is(contains_key($out), 0, 'list table has no key');

($rc, $out, $err) = $t->ctl('list', '--format', 'json');
is($rc, 0, 'list json exit code');

my @rows = map { eval { $json->decode($_) } // {} } split /\n/, $out;
my %rows = map { ($_->{id} // '') => $_ } @rows;

is(scalar(grep { $rows{$_} } @ids), scalar(@ids), 'list json ids');
is(join(',', sort keys %{$rows{alice}}),
   'created,disabled,expires,hint,id,not_before,plan,scopes,status,subject',
   'list json fields');
is($rows{old}{status}, 'expired', 'list json expired status');
is($rows{future}{status}, 'not_yet_valid', 'list json not yet valid status');
ok($rows{dis}{disabled}, 'list json disabled');
is(contains_key($out), 0, 'list json has no key');

($rc, $out, $err) = $t->ctl('list', '--format', 'csv');
is($rc, 0, 'list csv exit code');
like($out, qr/\Aid,subject,scopes,plan,expires,not_before,disabled,hint,
               created\n/x,
     'list csv header');
is(scalar(grep { $out =~ /^"?\Q$_\E"?,/m } @ids), scalar(@ids), 'list csv ids');
is(contains_key($out), 0, 'list csv has no key');

($rc, $out, $err) = $t->ctl('list', '--subject', 'Alice A', '--format',
                            'json');
is($rc, 0, 'list subject exit code');
is(join(',', map { (eval { $json->decode($_) } // {})->{id} // '' }
             split /\n/, $out),
   'alice', 'list subject');

# show

($rc, $out, $err) = $t->ctl('show', 'alice');
is($rc, 0, 'show exit code');
like($out, qr/^id: alice$/m, 'show id');
like($out, qr/^subject: Alice A$/m, 'show subject');
like($out, qr/^scopes: a,b$/m, 'show scopes');
like($out, qr/^plan: gold$/m, 'show plan');
like($out, qr/^status: valid$/m, 'show status');
like($out, qr/^expires: 2030-01-01T00:00:00Z$/m, 'show expires');
like($out, qr/^created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m, 'show created');
like($out, qr/^hint: \Q$j->{hint}\E$/m, 'show hint');
unlike($out, qr/^hash/m, 'show has no hash');
is(contains_key($out), 0, 'show has no key');

($rc, $out, $err) = $t->ctl('show', 'nope');
is($rc, 3, 'show unknown exit code');
is($out, '', 'show unknown stdout');
is($err, "apikeyctl: show: no key with id \"nope\"\n", 'show unknown message');

# revoke and expire mistakes change nothing

$dump = dump_db($db);

($rc, $out, $err) = $t->ctl('revoke', 'nope');
is($rc, 3, 'revoke unknown exit code');
like($err, qr/^apikeyctl: revoke: no key with id "nope"$/m,
     'revoke unknown message');

# a long id of control characters: each is quoted as four characters

my $ctrl = "\x01" x 70;
my $quoted = '\\x01' x 64 . '...';

($rc, $out, $err) = $t->ctl('revoke', $ctrl);
is($rc, 3, 'revoke control characters exit code');
is($err, "apikeyctl: revoke: no key with id \"$quoted\"\n",
   'revoke control characters message');

($rc, $out, $err) = $t->ctl({ input => "key,id\nplain-key-ctrl-id,$ctrl\n" },
                            'import', '-');
is($rc, 3, 'import control characters exit code');
like($err, qr/^apikeyctl: import: line 2: invalid id "\Q$quoted\E" /m,
     'import control characters message');
ok(dump_db($db) eq $dump, 'control characters change nothing');

($rc, $out, $err) = $t->ctl('revoke', 'alice', 'nope');
is($rc, 3, 'revoke known and unknown exit code');
ok(dump_db($db) eq $dump, 'revoke unknown changes nothing');

($rc, $out, $err) = $t->ctl('verify', $alice);
is($rc, 0, 'revoke unknown keeps the known key');

($rc, $out, $err) = $t->ctl('expire', 'alice', '--at', 'tomorrow');
is($rc, 2, 'expire bad time exit code');
like($err, qr/^apikeyctl: expire: invalid time "tomorrow"/m,
     'expire bad time message');
ok(dump_db($db) eq $dump, 'expire bad time changes nothing');

# a file of keys without a header row: the first key is no column name
# to show in a message, nor a JSON field name

my $headless = 'plain-headless-key-0123456789';

($rc, $out, $err) = $t->ctl({ input => "$headless\n" }, 'import', '-');
is($rc, 3, 'import without header exit code');
is($err, "apikeyctl: import: line 1: unknown column 1 (its name is not "
   . "shown: it could be a key)\n", 'import without header message');
is(index($err, $headless), -1, 'import without header hides the key');

($rc, $out, $err) = $t->ctl({ input => qq{{"$headless":"x"}\n} }, 'import',
                            '--format', 'jsonl', '-');
is($rc, 3, 'import key as json field exit code');
is($err, "apikeyctl: import: line 1: unknown field (its name is not shown: "
   . "it could be a key)\n", 'import key as json field message');

($rc, $out, $err) = $t->ctl({ input => "key,expiry date\n" }, 'import', '-');
is($rc, 3, 'import unknown column exit code');
is($err, "apikeyctl: import: line 1: unknown column \"expiry date\"\n",
   'import unknown column message');
ok(dump_db($db) eq $dump, 'unknown columns change nothing');

# plain keys from standard input

my @plain = map { sprintf 'plain-%02d-%08x%08x', $_, int rand 2**32,
                  int rand 2**32 } 1 .. 3;

($rc, $out, $err) = $t->ctl({ input => join '', "key,id\n",
                              map { "$plain[$_ - 1],plain$_\n" } 1 .. 3 },
                            'import', '-');
is($rc, 0, 'import stdin exit code');
is($out, "imported 3 keys: 3 added, 0 updated, 0 unchanged, 0 removed, "
   . "0 rejected\n", 'import stdin summary');

($rc, $out, $err) = $t->ctl('verify', $plain[1]);
is($rc, 0, 'verify imported plain key');
is($out, "valid id=plain2\n", 'verify imported plain key output');

push @keys, @plain;

# export, then import --replace keeps every key working

my %before = map { $_ => join ' ', $t->ctl('verify', $_) } @keys;
my $list = $t->ctl_ok('list', '--format', 'json');

($rc, $out, $err) = $t->ctl('export');
is($rc, 0, 'export exit code');
like($out, qr/\Ahash,id,subject,scopes,plan,expires,not_before,disabled,
               hint,created\n/x,
     'export csv header');
is(contains_key($out), 0, 'export has no key');

write_file("$prefix/export.csv", $out);

($rc, $out, $err) = $t->ctl('import', '--replace', "$prefix/export.csv");
is($rc, 0, 'import export exit code');
like($out, qr/^imported 14 keys: /, 'import export summary');

my %after = map { $_ => join ' ', $t->ctl('verify', $_) } @keys;

is(scalar(grep { $before{$_} eq $after{$_} } @keys), scalar(@keys),
   'import export keeps every key');
is(scalar(grep { /^0 valid / } values %after), 2 + 1 + 5 + 3,
   'import export valid keys');
is($t->ctl_ok('list', '--format', 'json'), $list,
   'import export keeps the records');

# no plaintext key in the database file

my $strings = `strings -n 8 $db/data.mdb`;
is(contains_key($strings), 0, 'no key in strings data.mdb');
is(contains_key(slurp("$db/data.mdb")), 0, 'no key in data.mdb');

# help, version, errors

($rc, $out, $err) = $t->ctl('--help');
is($rc, 0, 'help exit code');
like($out, qr/^ *0 +success/m, 'help exit code 0');
like($out, qr/^ *1 +failure/m, 'help exit code 1');
like($out, qr/^ *2 +usage error/m, 'help exit code 2');
like($out, qr/^ *3 +invalid input/m, 'help exit code 3');
like($out, qr/^ *4 +verify/m, 'help exit code 4');
my $usage = 'apikeyctl import [--format csv|jsonl] [--replace [--force]] '
            . '[--dry-run]';

like($out, qr/^ *\Q$usage\E$/m, 'help usage import');

($rc, $out, $err) = $t->ctl('-V');
is($rc, 0, 'version exit code');
is($out, "apikeyctl 0.1.0\n", 'version');

($rc, $out, $err) = $t->ctl({ db => "$prefix/nowhere" }, 'list');
is($rc, 1, 'missing database exit code');
is($out, '', 'missing database stdout');
is($err, "apikeyctl: database \"$prefix/nowhere\" does not exist "
   . "(run \"apikeyctl init\")\n", 'missing database message');

($rc, $out, $err) = $t->ctl('frobnicate');
is($rc, 2, 'unknown command exit code');
like($err, qr/^apikeyctl: /, 'unknown command message');

($rc, $out, $err) = $t->ctl('gen', '--no-such-option');
is($rc, 2, 'unknown option exit code');
like($err, qr/^apikeyctl: /, 'unknown option message');

($rc, $out, $err) = $t->ctl({ secret => "$prefix/other.secret" }, 'list');
is($rc, 1, 'missing secret exit code');
like($err, qr/^apikeyctl: .*\Q$prefix\E\/other\.secret/m,
     'missing secret message names the file');

write_file("$prefix/other.secret", join('', map { sprintf '%02x', $_ } 1 .. 32)
           . "\n");

($rc, $out, $err) = $t->ctl({ secret => "$prefix/other.secret" }, 'verify',
                            $alice);
is($rc, 1, 'another secret exit code');
like($err, qr/^apikeyctl: .*database was made with another secret/m,
     'another secret message');

# keys are printed after the commit: a key that could not be printed
# was stored, and gen says so, with the command that revokes it

SKIP: {
    skip 'no /dev/full', 4 unless -c '/dev/full';

    my $cmd = "$t->{apikeyctl} -d " . $t->db() . ' -s ' . $t->secret()
              . " gen --id unseen > /dev/full 2> $prefix/full.err";

    system($cmd);
    is($? >> 8, 1, 'gen to a full stdout exit code');
    is(Apikey::Harness::slurp("$prefix/full.err"),
       "apikeyctl: gen: write to standard output failed (No space left on "
       . "device) after the keys were stored: 1 key is stored that nobody "
       . "may have seen; revoke it:\n  apikeyctl revoke unseen\n",
       'gen to a full stdout message');

    ($rc, $out, $err) = $t->ctl('show', 'unseen');
    is($rc, 0, 'key not printed was stored');
    like($out, qr/^id: unseen$/m, 'key not printed is shown by id');
}

done_testing();

###############################################################################

sub gen_key {
    my $k = $t->ctl_ok('gen', @_);
    chomp $k;
    return $k;
}

# how many keys (or their random parts) are in a text: a count, so that
# a failure does not print a key

sub contains_key {
    my ($text) = @_;

    return scalar grep { index($text, $_) >= 0 || index($text, tail($_)) >= 0 }
                  @keys;
}

sub tail {
    my ($k) = @_;
    return $k =~ /_([0-9A-Za-z]{38})\z/ ? $1 : substr($k, 6);
}

sub mode {
    return (stat $_[0])[2] & 07777;
}

sub dump_db {
    my ($dir) = @_;
    my $dump = `/usr/bin/mdb_dump -a $dir 2>&1`;
    return $? ? "mdb_dump failed: $? " . rand() : $dump;
}

sub slurp {
    return Apikey::Harness::slurp($_[0]);
}

