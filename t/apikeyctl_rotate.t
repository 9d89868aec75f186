#!/usr/bin/perl

# Tests apikeyctl rotate: a new key with the old key's subject, scopes,
# plan and prefix, the two records linked both ways in one transaction,
# the old key's expiry cut to the end of the grace; show and list of the
# links, which revoke removes; every refusal (an expired key among them)
# exits 3 and changes nothing; keys are never echoed; a full map is
# grown for gen, rotate and the updates.

use strict;
use warnings;

use Test::More;

use JSON::PP;
use Time::Local qw(timegm);

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $json = JSON::PP->new();

my ($rc, $out, $err, $before, $j, $s);

# "check" after each write; skipped only while check is a stub

sub check_ok {
    my ($name, %opts) = @_;

    my ($rc, $out, $err) = $t->ctl(\%opts, 'check');

    SKIP: {
        skip 'apikeyctl check is not built yet', 1
            if $rc == 1 && $err =~ /not built yet/;

        is($rc, 0, "check after $name") or diag($out . $err);
    }
}

sub rfc3339 {
    my ($s) = @_;

    return undef unless defined $s
        && $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/;

    return timegm($6, $5, $4, $3, $2 - 1, $1);
}

sub show {
    my ($id) = @_;

    my ($rc, $out, $err) = $t->ctl('show', $id, '--format', 'json');
    die "show $id: exit $rc: $err" if $rc != 0;

    return $json->decode($out);
}

sub status {
    my ($key) = @_;

    my (undef, $out) = $t->ctl({ input => "$key\n" }, 'verify', '-');
    chomp $out;

    return $out;
}

sub unchanged {
    my ($name) = @_;

    is($t->ctl_ok('export'), $before, "$name changes nothing");
}

$t->init_db();

my $a = $t->gen('--id', 'a', '--subject', 'Alice A', '--scopes', 'read,write',
                '--plan', 'gold', '--prefix', 'sk_live', '--expires', '30d');
my $a_expires = show('a')->{expires};

# rotate, JSON: like gen --format json, plus "replaces"

my $t0 = time();

($rc, $out, $err) = $t->ctl('rotate', 'a', '--format', 'json');
is($rc, 0, 'rotate exit code');
is($err, '', 'rotate stderr');
is(index($out, $a), -1, 'rotate does not print the old key');

$j = eval { $json->decode($out) } // {};
my $b = $j->{key} // '';
my $b_id = $j->{id} // '';

like($b, qr/^sk_live_[0-9A-Za-z]{38}$/, 'rotate keeps the prefix');
like($b_id, qr/^[0-9a-f]{16}$/, 'rotate default id');
is(join(',', sort keys %$j),
   'created,expires,hint,id,key,not_before,plan,replaces,scopes,subject',
   'rotate json fields');
is($j->{replaces}, 'a', 'rotate json replaces');
is($j->{subject}, 'Alice A', 'rotate json subject');
is($j->{scopes}, 'read,write', 'rotate json scopes');
is($j->{plan}, 'gold', 'rotate json plan');
is($j->{expires}, $a_expires, 'new key keeps the expiry after the grace');
is($j->{not_before}, undef, 'new key not_before');
is($j->{hint}, substr($b, 0, 12) . '...', 'rotate json hint');
is(status($a), "valid id=a", 'old key valid in the grace');
is(status($b), "valid id=$b_id", 'new key valid');
check_ok('rotate');

# show of either key, both formats

$s = show('a');
is($s->{replaced_by}, $b_id, 'show old json replaced_by');
ok($s->{replaced_by_exists}, 'show old json replaced_by exists');
is($s->{replaces}, undef, 'show old json replaces null');
ok(!exists $s->{replaces_exists}, 'show old json no replaces_exists');

my $grace_end = rfc3339($s->{expires}) // 0;
ok($grace_end >= $t0 + 86400 && $grace_end <= time() + 86400,
   'default grace 24h') or diag("expires $s->{expires}, now " . time());

$s = show($b_id);
is($s->{replaces}, 'a', 'show new json replaces');
ok($s->{replaces_exists}, 'show new json replaces exists');
is($s->{replaced_by}, undef, 'show new json replaced_by null');
is($s->{status}, 'valid', 'show new json status');

$out = $t->ctl_ok('show', 'a');
like($out, qr/^replaces: -$/m, 'show old replaces');
like($out, qr/^replaced_by: \Q$b_id\E$/m, 'show old replaced_by');
$out = $t->ctl_ok('show', $b_id);
like($out, qr/^replaces: a$/m, 'show new replaces');
like($out, qr/^replaced_by: -$/m, 'show new replaced_by');

# a key rotated to a key that exists: refused, rotate the new one

$before = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl('rotate', 'a');
is($rc, 3, 'rotate twice exit code');
is($out, '', 'rotate twice prints nothing');
is($err, qq{apikeyctl: rotate: key "a" was already rotated to "$b_id"; }
         . qq{rotate "$b_id"\n}, 'rotate twice message');
unchanged('rotate twice');

# the chain goes on: --new-id, --grace 0, text output

($rc, $out, $err) = $t->ctl('rotate', $b_id, '--new-id', 'c', '--grace', '0');
is($rc, 0, 'rotate new key exit code');
is($err, '', 'rotate new key stderr');
like($out, qr/^sk_live_[0-9A-Za-z]{38}\n\z/, 'rotate text prints the key');
chomp(my $c = $out);

is(status($c), 'valid id=c', 'third key valid');
is(status($b), "expired id=$b_id", 'grace 0 ends the old key now');
is(status($a), 'valid id=a', 'first key still in its own grace');

$s = show($b_id);
is($s->{replaces}, 'a', 'chain: middle replaces');
is($s->{replaced_by}, 'c', 'chain: middle replaced_by');
is($s->{status}, 'expired', 'chain: middle expired');
is(show('c')->{replaces}, $b_id, 'chain: last replaces');
is(show('c')->{expires}, $a_expires, 'chain: the expiry is kept');
check_ok('rotate --new-id --grace 0');

# refusals: exit 3, nothing changed

$before = $t->ctl_ok('export');

for my $case (
    [ ['nope'],                   qq{no key with id "nope"} ],
    [ ['c', '--new-id', 'a'],     qq{id "a" already exists} ],
    [ ['c', '--new-id', 'c'],     qq{id "c" already exists} ],
    [ [$b_id],                    qq{key "$b_id" was already rotated to "c"; }
                                  . qq{rotate "c"} ],
    [ ['a'],                      qq{key "a" was already rotated to "$b_id"; }
                                  . qq{rotate "$b_id"} ],
) {
    my ($args, $msg) = @$case;

    ($rc, $out, $err) = $t->ctl('rotate', @$args);
    is($rc, 3, "rotate @$args exit code");
    is($out, '', "rotate @$args prints nothing");
    is($err, "apikeyctl: rotate: $msg\n", "rotate @$args message");
}

unchanged('refused rotations');

# usage errors: exit 2, nothing changed

for my $args (
    [],
    ['c', 'a'],
    ['c', '--grace'],
    ['c', '--grace', ''],
    ['c', '--grace', '-1h'],
    ['c', '--grace', 'now'],
    ['c', '--grace', '2027-01-31T00:00:00Z'],
    ['c', '--grace', '10'],
    ['c', '--grace', 'h'],
    ['c', '--grace', '1x'],
    ['c', '--grace', '1.5h'],
    ['c', '--grace', '99999999999w'],
    ['c', '--new-id', ''],
    ['c', '--new-id', 'bad id'],
    ['c', '--prefix', 'Bad'],
    ['c', '--format', 'csv'],
    ['c', '--bogus'],
) {
    ($rc, $out, $err) = $t->ctl('rotate', @$args);
    is($rc, 2, "rotate @$args exit code");
    is($out, '', "rotate @$args prints nothing");
    like($err, qr/^  apikeyctl rotate ID /m, "rotate @$args usage");
}

unchanged('usage errors');

# a key where an id belongs, or as an option value: never echoed

for my $args ([$c], ['c', '--new-id', $c], ["--new-id=$c", 'c'],
              ['c', '--grace', $c])
{
    my $name = join ' ', map { $_ eq $c ? 'KEY' : $_ } @$args;

    ($rc, $out, $err) = $t->ctl('rotate', @$args);
    # a key as the id is invalid data (3), as for show and revoke; as
    # an option value it is a usage error (2)

    is($rc, $args->[0] eq $c ? 3 : 2, "rotate $name exit code");
    is($out, '', "rotate $name prints nothing");
    is(index($err, $c), -1, "rotate $name does not echo the key");
    like($err, qr/API key.*not shown/, "rotate $name says why");
}

unchanged('keys as arguments');

# a disabled key: enable it first

$t->gen('--id', 'd', '--plan', 'free');
$t->ctl_ok('disable', 'd');
$before = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl('rotate', 'd');
is($rc, 3, 'rotate disabled exit code');
is($out, '', 'rotate disabled prints nothing');
like($err, qr/^apikeyctl: rotate: key "d" is disabled: enable it first /,
     'rotate disabled message');
unchanged('rotate disabled');

$t->ctl_ok('enable', 'd');
($rc, $out, $err) = $t->ctl('rotate', 'd', '--new-id', 'd2', '--prefix',
                            'ak_test', '--format', 'json');
is($rc, 0, 'rotate enabled again exit code');
$j = eval { $json->decode($out) } // {};
like($j->{key} // '', qr/^ak_test_/, 'rotate --prefix');
is($j->{plan}, 'free', 'rotate keeps the plan');
is($j->{expires}, undef, 'no expiry stays none');
ok((rfc3339(show('d')->{expires}) // 0) >= $t0 + 86400,
   'no expiry: the old key ends with the grace');
check_ok('rotate --prefix');

# a key not valid yet: nothing to hand over

$t->gen('--id', 'later', '--not-before', '1d');
$before = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl('rotate', 'later');
is($rc, 3, 'rotate not yet valid exit code');
like($err, qr/^apikeyctl: rotate: key "later" is not valid before \S+Z: /,
     'rotate not yet valid message');
unchanged('rotate not yet valid');

# an expired key: refused, rotation never extends a lifetime; once it
# has an expiry ahead again, the new key takes it

$t->gen('--id', 'old');
$t->ctl_ok('expire', 'old', '--at', 'now');
my $old_expires = show('old')->{expires};
$before = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl('rotate', 'old', '--new-id', 'new',
                            '--format', 'json');
is($rc, 3, 'rotate expired exit code');
is($out, '', 'rotate expired prints nothing');
is($err, qq{apikeyctl: rotate: key "old" expired at $old_expires: rotation }
         . qq{never extends a lifetime; "apikeyctl expire old --at WHEN" }
         . qq{gives it a new expiry first, or gen a new key\n},
     'rotate expired message');
unchanged('rotate expired');

$t->ctl_ok('expire', 'old', '--at', '2d');
my $old_again = show('old')->{expires};

($rc, $out, $err) = $t->ctl('rotate', 'old', '--new-id', 'new',
                            '--format', 'json');
is($rc, 0, 'rotate expired, then expire: exit code');
is($err, '', 'rotate expired, then expire: stderr');
$j = eval { $json->decode($out) } // {};
is($j->{expires}, $old_again, 'rotate expired, then expire: the expiry kept');
is(show('old')->{replaced_by}, 'new', 'rotate expired, then expire: linked');
check_ok('rotate expired, then expire');

# an expiry within the grace: kept by both keys

$t->gen('--id', 'soon', '--expires', '1h');
my $soon = show('soon')->{expires};

($rc, $out) = $t->ctl('rotate', 'soon', '--new-id', 'soon2', '--grace', '2d',
                      '--format', 'json');
is($rc, 0, 'rotate soon exit code');
is((eval { $json->decode($out) } // {})->{expires}, $soon,
   'expiry before the grace end: the new key keeps it');
is(show('soon')->{expires}, $soon, 'expiry before the grace end: kept');

# a grace given: the old key ends then

($rc, $out) = $t->ctl('rotate', 'soon2', '--new-id', 'soon3', '--grace',
                      '90s');
is($rc, 0, 'rotate --grace 90s exit code');
my $end = rfc3339(show('soon2')->{expires}) // 0;
ok($end >= $t0 + 90 && $end <= time() + 90, 'rotate --grace 90s expiry');
check_ok('rotate --grace 90s');

# updates keep the links

$t->ctl_ok('disable', 'c');
$t->ctl_ok('enable', 'c');
$t->ctl_ok('expire', $b_id, '--at', '1h');
$t->ctl_ok('disable', $b_id);
is(show('c')->{replaces}, $b_id, 'updates keep replaces');
is(show($b_id)->{replaces}, 'a', 'updates keep replaces (middle)');
is(show($b_id)->{replaced_by}, 'c', 'updates keep replaced_by');
check_ok('updates');

# list: the links in JSON when set; CSV and export as they were

($rc, $out) = $t->ctl('list', '--format', 'json');
my %rows = map { my $r = $json->decode($_); ($r->{id} => $r) }
           split /\n/, $out;
is($rows{$b_id}{replaces}, 'a', 'list json replaces');
is($rows{$b_id}{replaced_by}, 'c', 'list json replaced_by');
ok(!exists $rows{later}{replaces} && !exists $rows{later}{replaced_by},
   'list json without links');

($rc, $out) = $t->ctl('list', '--format', 'csv');
like($out, qr/\Aid,subject,scopes,plan,expires,not_before,disabled,hint,
               created\n/x, 'list csv header unchanged');
$out = $t->ctl_ok('export');
like($out, qr/\Ahash,id,subject,scopes,plan,expires,not_before,disabled,
               hint,created\n/x, 'export csv header unchanged');
$out = $t->ctl_ok('export', '--format', 'jsonl');
unlike($out, qr/replace/, 'export jsonl has no links');

# revoke: the links to the key revoked go with it, in the same
# transaction; the other links stay

$t->ctl_ok('revoke', 'c');

$s = show($b_id);
is($s->{replaced_by}, undef, 'revoked: the link to it is gone');
is($s->{replaces}, 'a', 'revoked: the other link stays');
ok($s->{replaces_exists}, 'revoked: the other key is there');
like($t->ctl_ok('show', $b_id), qr/^replaced_by: -$/m,
     'revoked: text shows no link');
check_ok('revoke of the new key');

$t->ctl_ok('revoke', 'a');
is(show($b_id)->{replaces}, undef, 'revoked old: the link to it is gone');
like($t->ctl_ok('show', $b_id), qr/^replaces: -$/m,
     'revoked old: text shows no link');
check_ok('revoke');

# a key whose replacement was revoked may be rotated again

$t->ctl_ok('enable', $b_id);
$t->ctl_ok('expire', $b_id, '--at', '2d');
($rc, $out, $err) = $t->ctl('rotate', $b_id, '--new-id', 'c2');
is($rc, 0, 'rotate after the new key was revoked exit code');
is(show($b_id)->{replaced_by}, 'c2', 'rotate again: the link is replaced');
check_ok('rotate again');

# standard output that fails after the commit: told which key to revoke

SKIP: {
    skip 'no /dev/full', 3 unless -c '/dev/full';

    my $errfile = $t->prefix() . '/full.err';

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDOUT, '>', '/dev/full' or die;
        open STDERR, '>', $errfile or die;
        exec $t->{apikeyctl}, '-d', $t->db(), '-s', $t->secret(), 'rotate',
             'c2', '--new-id', 'c3' or die;
    }

    waitpid($pid, 0);
    is($? >> 8, 1, 'rotate to a full stdout exit code');
    my $msg = quotemeta('apikeyctl: rotate: write to standard output '
                        . 'failed (No space left on device) after the new '
                        . 'key was stored: nobody may have seen it; revoke '
                        . 'it with "apikeyctl revoke c3" (the old key "c2" '
                        . 'still expires at ');

    like(Apikey::Harness::slurp($errfile), qr/^$msg\S+Z\)\n\z/,
         'rotate to a full stdout message')
        or diag(Apikey::Harness::slurp($errfile));
    is(show('c3')->{replaces}, 'c2', 'rotate to a full stdout: stored');
}

# no key anywhere but in the output that shows it once

for my $cmd (['list', '--format', 'json'], ['export'], ['show', $b_id]) {
    $out = $t->ctl_ok(@$cmd);
    is(scalar(grep { index($out, $_) >= 0 } $a, $b, $c), 0,
       "@$cmd shows no key");
}

# a map too small for the keys grows: gen, rotate and the updates

my %small = (db => $t->prefix() . '/small');

$t->init_db(\%small, '--map-size', '64k');

($rc, $out, $err) = $t->ctl(\%small, 'gen', '--count', '2000', '--format',
                            'json');
is($rc, 0, 'gen 2000 into a 64k map exit code');
is($err, '', 'gen 2000 into a 64k map stderr');
my @ids = map { (eval { $json->decode($_) } // {})->{id} // '' }
          split /\n/, $out;
is(scalar(@ids), 2000, 'gen 2000 into a 64k map keys');
ok(-s "$small{db}/data.mdb" > 65536, 'the map grew');
($rc, $out, $err) = $t->ctl(\%small, 'show', $ids[1999]);
is($rc, 0, 'show after growth exit code');
($rc, $out, $err) = $t->ctl(\%small, 'stats');
ok($rc == 0 || $err =~ /not built yet/, 'stats after growth')
    or diag($err);
check_ok('gen into a small map', %small);

my %tiny = (db => $t->prefix() . '/tiny');

$t->init_db(\%tiny, '--map-size', '64k');
$t->ctl_ok(\%tiny, 'gen', '--id', 'r0');

my $fails = 0;

for my $i (1 .. 120) {
    ($rc, $out, $err) = $t->ctl(\%tiny, 'rotate', 'r' . ($i - 1), '--new-id',
                                "r$i", '--grace', '0');
    $fails++, diag("rotate r$i: exit $rc: $err") if $rc != 0;
}

is($fails, 0, 'a chain of 120 rotations in a 64k map');
ok(-s "$tiny{db}/data.mdb" > 65536, 'rotate grew the map');
is(show_in(\%tiny, 'r120')->{replaces}, 'r119', 'the chain after growth');
check_ok('rotations into a small map', %tiny);

my %upd = (db => $t->prefix() . '/upd');

$t->init_db(\%upd, '--map-size', '64k');
$out = $t->ctl_ok(\%upd, 'gen', '--count', '150', '--format', 'json');
my $ids = join '', map { ($json->decode($_)->{id}) . "\n" } split /\n/, $out;
my $size = -s "$upd{db}/data.mdb";

($rc, $out, $err) = $t->ctl({ %upd, input => $ids }, 'disable', '-');
is($rc, 0, 'disable 150 in a 64k map exit code') or diag($err);
is(scalar(() = $out =~ /^disabled /mg), 150, 'disable 150 output');
ok(-s "$upd{db}/data.mdb" > 65536, 'disable grew the map')
    or diag("data.mdb $size bytes before");
check_ok('disable into a small map', %upd);

sub show_in {
    my ($db, $id) = @_;

    my ($rc, $out, $err) = $t->ctl($db, 'show', $id, '--format', 'json');

    return $rc == 0 ? $json->decode($out) : {};
}

done_testing();
