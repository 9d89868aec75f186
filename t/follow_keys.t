#!/usr/bin/perl

# Tests that a plaintext key in a column of PostgreSQL's table is not
# served, whatever its shape: apikeyctl's own, the README's Python
# recipe ("ak_" + secrets.token_urlsafe(24): urlsafe base64, with "-"
# and "_"), another vendor's ("sk_live_..."); its row is named by id and
# version, the key never shown.  Values that only look long (a UUID, a
# hex hash, words joined by "-" and "_") are served.  import and gen
# refuse the same values (one rule, akc_key_run()).

use strict;
use warnings;

use Test::More;

use Apikey::Harness;
use Apikey::Pg;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $why = Apikey::Pg::unavailable();
plan skip_all => $why if $why;

$t->init_db();

my $pg = Apikey::Pg->new();
$pg->psql($t->ctl_ok('follow', '--print-schema'));

# the README's recipe, as Python makes them (fixed here: a test that
# fails is one that fails again)

my @tokens = (
    'ak_1vCkn81T-u120ckUX4NRNngZ-6TcK_Xb',
    'ak_6Rc6lGHRqpbEVkkuNKiEFCIyiHXhLzUH',
    'HnNsHbDzxCItlSzamG_uAvi0R9uBr6vu',
    'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
);

my @fine = (
    '550e8400-e29b-41d4-a716-446655440000',
    '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    'customer-42-Main_Account-Production',
    'MyCompany_Production_Service_v2_Backend',
);

my $n = 0;

sub hash_of {
    my $key = sprintf 'test-key-%04d-plain', $n++;
    my $h = $t->ctl_ok({ input => $key }, 'hash');
    chomp $h;
    return ($key, $h);
}

my (%bad, %good);

for my $i (0 .. $#tokens) {
    my ($key, $h) = hash_of();
    my $col = (qw(subject plan subject scopes))[$i];
    my $val = $col eq 'plan' ? substr($tokens[$i], 0, 64) : $tokens[$i];
    $bad{"bad$i"} = $key;
    $pg->psql("INSERT INTO apikey_keys (hash, id, $col) VALUES "
              . "(decode('$h', 'hex'), 'bad$i', '$val')");
}

for my $i (0 .. $#fine) {
    my ($key, $h) = hash_of();
    $good{"fine$i"} = $key;
    $pg->psql("INSERT INTO apikey_keys (hash, id, subject) VALUES "
              . "(decode('$h', 'hex'), 'fine$i', '$fine[$i]')");
}

my ($rc, $out, $err) = $t->ctl('follow', '--once', $pg->conninfo());
is($rc, 0, 'the round exits 0');

for my $id (sort keys %bad) {
    like($err, qr/^apikeyctl: follow: row "$id" of version \d+: column "\w+" holds an API key \(not shown\); the table holds the keyed hash of a key \("hash"\), never the key; its key is not served$/m,
         "$id: refused, said without the key");
    isnt(($t->ctl('verify', $bad{$id}))[0], 0, "$id: not served");
}

for my $id (sort keys %good) {
    is(($t->ctl('verify', $good{$id}))[0], 0, "$id: served");
}

unlike($err, qr/"key" column/, 'no "key" column the table does not have');

my $list = $t->ctl_ok('list', '--format', 'json');

for my $tok (@tokens, map { substr($_, 8, 16) } @tokens) {
    unlike($err . $list, qr/\Q$tok\E/, "not shown: " . substr($tok, 0, 6));
}

# a change of a row: the same

my ($key, $h) = hash_of();
$pg->psql("UPDATE apikey_keys SET subject = '$tokens[0]' WHERE id = 'fine0'");
($rc, $out, $err) = $t->ctl('follow', '--once', $pg->conninfo());
like($err, qr/^apikeyctl: follow: row "fine0" of version \d+: column "subject" holds an API key/m,
     'an update to a token: refused');
isnt(($t->ctl('verify', $good{fine0}))[0], 0, 'and its key no longer served');

# import and gen: the same rule

my $db2 = $t->prefix() . '/db2';
$t->ctl_ok({ db => $db2 }, 'init');

for my $tok (@tokens) {
    ($rc, $out, $err) = $t->ctl({ db => $db2,
                                  input => "key,id,subject\n"
                                           . "plain-key-0001,x,$tok\n" },
                                'import', '-');
    is($rc, 3, 'import refuses ' . substr($tok, 0, 6));
    unlike($err, qr/\Q$tok\E/, 'import: not shown');

    ($rc, $out, $err) = $t->ctl({ db => $db2 }, 'gen', '--subject', $tok);
    is($rc, 2, 'gen refuses ' . substr($tok, 0, 6));
    unlike($err, qr/\Q$tok\E/, 'gen: not shown');
}

for my $val (@fine) {
    ($rc, $out, $err) = $t->ctl({ db => $db2,
                                  input => "key,id,subject\n"
                                           . "plain-key-0002,y,$val\n" },
                                'import', '--replace', '--force', '-');
    is($rc, 0, 'import takes ' . substr($val, 0, 12)) or diag($err);
}

done_testing();
