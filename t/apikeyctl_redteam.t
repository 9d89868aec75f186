#!/usr/bin/perl

# What a red-team run of issue 8 found in init, the argument checks and
# the commit: a mistyped key taken as an id or a subject and shown, a map
# too small to hold the sub-databases, a database that lost its meta
# entries blessed with any secret, and a full disk reported as a failing
# one.

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use Apikey::Harness;

my $t = Apikey::Harness->new();
$t->require_apikeyctl();

$t->init_db();

my $key = $t->gen('--id', 'first');

# a generated key with one character changed: its checksum fails, and it
# is still all but the whole key

my $i = 10;
my $c = substr($key, $i, 1) eq 'X' ? 'Y' : 'X';
my $typo = substr($key, 0, $i) . $c . substr($key, $i + 1);

isnt($typo, $key, 'the typo differs from the key');

my $before = $t->ctl_ok('export');

for my $args (['gen', '--id', $typo],
              ['gen', '--subject', "owner $typo"],
              ['gen', "--id=$typo"],
              ['show', $typo],
              ['revoke', $typo],
              ['rotate', $typo],
              ['list', '--subject', $typo])
{
    my $name = join ' ', map { index($_, $typo) >= 0 ? 'TYPO' : $_ } @$args;
    my ($rc, $out, $err) = $t->ctl(@$args);

    ok($rc == 2 || $rc == 3, "$name refused") or diag $err;
    is(index($out . $err, substr($typo, 3, 30)), -1,
       "$name does not show the mistyped key");
    like($err, qr/API key.*not shown/, "$name says why");
}

# a character dropped, or the prefix left out: the random body of the key
# all the same

for my $near (substr($key, 0, 10) . substr($key, 11), substr($key, 3),
              'ak-' . substr($key, 3))
{
    for my $args (['gen', '--id', $near], ['gen', '--subject', "x $near"],
                  ['show', $near])
    {
        my ($rc, $out, $err) = $t->ctl(@$args);
        ok($rc == 2 || $rc == 3, "$args->[0] $args->[1] NEAR refused")
            or diag $err;
        is(index($out . $err, substr($near, 5, 25)), -1,
           "$args->[0] $args->[1] NEAR not shown");
    }
}

# a hex hash or a long word as an id is no key

for my $id ('0123456789abcdef' x 4, 'supercalifragilisticexpialidociously') {
    my ($rc, $out, $err) = $t->ctl('gen', '--id', $id);
    is($rc, 0, "gen --id of a " . length($id) . "-character id works")
        or diag $err;
}

$before = $t->ctl_ok('export');

# in an import file, an id or a subject column holding it

for my $row ("$key,$typo,s", "$key,ok-id,has $typo inside") {
    my ($rc, $out, $err) = $t->ctl({ input => "key,id,subject\n$row\n" },
                                   'import', '-');

    is($rc, 3, 'import of a mistyped key in another column exit 3');
    is(index($out . $err, substr($typo, 3, 30)), -1,
       'import does not show the mistyped key');
    like($err, qr/line 2/, 'import names the line');
}

is($t->ctl_ok('export'), $before, 'nothing was changed');

# a map too small to hold the sub-databases is refused before any file is
# made (it used to leave a database no plain init could finish)

for my $size (qw(1 4k 65535)) {
    my $dir = $t->prefix . "/tiny-$size";
    my ($rc, $out, $err) = $t->ctl({ db => $dir }, 'init', '--map-size',
                                   $size);

    is($rc, 2, "init --map-size $size exit 2");
    like($err, qr/map size "\Q$size\E" is too small \(at least 64k\)/,
         "init --map-size $size says why");
    ok(!-e $dir, "init --map-size $size made nothing");
}

# a map the address space cannot hold fails, and leaves nothing behind
# that would make every later command refuse the directory

{
    my $dir = $t->prefix . '/huge';
    my ($rc, $out, $err) = $t->ctl({ db => $dir }, 'init', '--map-size',
                                   '120t');
    is($rc, 1, 'init --map-size 120t exit 1');
    like($err, qr/Cannot allocate memory/, 'init --map-size 120t says why');
    ok(!-e $dir, 'init --map-size 120t left nothing');

    ($rc, $out, $err) = $t->ctl({ db => $dir }, 'init', '--map-size', '1g');
    is($rc, 0, 'init of that directory then works') or diag $err;
    $t->init_db({ db => $dir });
}

{
    my $dir = $t->prefix . '/small';
    my ($rc, $out, $err) = $t->ctl({ db => $dir }, 'init', '--map-size',
                                   '64k');
    is($rc, 0, 'init --map-size 64k works') or diag $err;
    $t->init_db({ db => $dir });
}

# keys without meta entries: init must not record whatever secret it is
# given as theirs

SKIP: {
    skip 'mdb_dump and mdb_load (lmdb-utils) not found', 4
        unless -x '/usr/bin/mdb_dump' && -x '/usr/bin/mdb_load';

    my $lost = $t->prefix . '/lost-meta';
    mkdir $lost or die "$lost: $!";

    for my $sub (qw(keys ids)) {
        system("mdb_dump -s $sub '" . $t->db . "' > '$lost.$sub' "
               . "&& mdb_load -s $sub '$lost' < '$lost.$sub'") == 0
            or die "mdb_dump/mdb_load $sub failed";
    }

    my $other = $t->prefix . '/other.secret';
    Apikey::Harness::write_file($other, ('b' x 64) . "\n");
    chmod 0600, $other;

    my ($rc, $out, $err) = $t->ctl({ db => $lost, secret => $other },
                                   'init');

    is($rc, 1, 'init of keys without meta entries exit 1');
    like($err, qr/holds \d+ keys but no format version or secret fingerprint.*nothing was changed/,
         'init says the meta entries are missing');

    ($rc, $out, $err) = $t->ctl({ db => $lost, secret => $other }, 'check');
    is($rc, 1, 'check of it still fails');
    like($out . $err, qr/not initialized/, 'check says it is not initialized');

    $t->no_check($lost);
}

# a write that fails at its commit (a file size limit here, a full disk
# alike) says so, and that nothing was changed

SKIP: {
    my $db = $t->prefix . '/limited';
    $t->init_db({ db => $db });
    $t->ctl_ok({ db => $db }, 'gen', '--count', '3');
    my $export = $t->ctl_ok({ db => $db }, 'export');

    my $sh = sprintf q{ulimit -f 100 && exec '%s' -d '%s' -s '%s' gen }
                     . q{--count 20000 > /dev/null 2> '%s/limit.err'},
                     $t->{apikeyctl}, $db, $t->secret, $t->prefix;
    system('/bin/sh', '-c', $sh);
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;

    is($rc, 1, 'gen past a file size limit exit 1, no signal');

    my $err = Apikey::Harness::slurp($t->prefix . '/limit.err');
    like($err, qr/a full disk or a file size limit gives this error too\); nothing was changed/,
         'the error names a full disk, and that nothing was changed');
    is($t->ctl_ok({ db => $db }, 'export'), $export,
       'and nothing was changed');
}

# gen whose output is lost names every key to revoke, not a second of
# creation that other keys may share

SKIP: {
    skip '/dev/full not found', 4 unless -c '/dev/full';

    my $db = $t->prefix . '/unseen';
    $t->init_db({ db => $db });
    $t->ctl_ok({ db => $db }, 'gen', '--count', '5');

    my $sh = sprintf q{exec '%s' -d '%s' -s '%s' gen --count 40 }
                     . q{> /dev/full 2> '%s/unseen.err'},
                     $t->{apikeyctl}, $db, $t->secret, $t->prefix;
    system('/bin/sh', '-c', $sh);
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    is($rc, 1, 'gen to a full standard output exit 1');

    my $err = Apikey::Harness::slurp($t->prefix . '/unseen.err');
    my ($ids) = $err =~ /^  apikeyctl revoke - <<EOF\n(.*?)^EOF$/ms;
    my @ids = split /\n/, $ids // '';
    is(scalar @ids, 40, 'every unseen key is named');

    my ($rc2, $out, $err2) = $t->ctl({ db => $db, input => join '', map { "$_\n" } @ids },
                                     'revoke', '-');
    is($rc2, 0, 'and revoking them as said works') or diag $err2;
    is(scalar(() = $t->ctl_ok({ db => $db }, 'list', '--format', 'csv')
                   =~ /\n/g), 1 + 5, 'the 5 keys made before are left');
}

# an expiry in the past is allowed, and said

{
    my ($rc, $out, $err) = $t->ctl('gen', '--id', 'late', '--expires',
                                   '2020-01-01T00:00:00Z');
    is($rc, 0, 'gen --expires in the past exit 0');
    like($err, qr/note: --expires is 2020-01-01T00:00:00Z, in the past: the key is already expired/,
         'gen --expires in the past says so');
}

done_testing();
