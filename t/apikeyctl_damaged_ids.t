#!/usr/bin/perl

# Tests an id that a damaged ids page no longer finds while its record is
# still in keys: revoke, disable, enable, expire, show and rotate exit 1
# and say the database is damaged, even with --ignore-missing, and change
# nothing; an id that no record holds is still unknown (exit 3).

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $prefix = $t->prefix();
my $good = "$prefix/good";
my $bad = "$prefix/bad";
my $page = 4096;

$t->init_db();

my $csv = "key,id\n"
          . join('', map { sprintf("plainkey-%04d,pk%04d\n", $_, $_) }
                     0 .. 2999);

$t->ctl_ok({ input => $csv }, 'import', '-');
$t->ctl_ok('backup', $good);

sub slurp_raw {
    my ($file) = @_;
    open my $fh, '<:raw', $file or die "$file: $!";
    local $/;
    return scalar <$fh>;
}

my $data = slurp_raw("$good/data.mdb");

# the node of pk1500 in an ids leaf page: a 32-byte hash as its data and
# the 6 bytes of the id as its key (lo, hi, flags, ksize, key); its key
# overwritten with 0xff, the page is still read without a fault but the
# id is no longer found there

my $id = 'pk1500';
my $node = pack('vvvv', 32, 0, 0, length $id) . $id;
my $off = index($data, $node, 2 * $page);

plan(skip_all => "no ids node of $id found in the copy") if $off < 0;

substr($data, $off + 8, length $id) = "\xff" x length $id;

mkdir $bad or die "$bad: $!";
write_file("$bad/data.mdb", $data);

my $damaged = qq{database "$bad" is damaged: key "$id" is in keys but }
              . qq{not in ids; nothing was changed; run "apikeyctl check"\n};

# the damage: ids no longer holds the id, keys still holds the key

my ($rc, $out, $err) = $t->ctl({ db => $bad, input => "plainkey-1500\n" },
                               'verify', '-');

plan(skip_all => 'the damage did not leave the key valid in keys')
    if $rc != 0 || $out !~ /^valid id=$id\b/;

my $before = slurp_raw("$bad/data.mdb");

for my $cmd (['revoke'], ['revoke', '--ignore-missing'], ['disable'],
             ['disable', '--ignore-missing'], ['enable'],
             ['expire', '--at', 'now'],
             ['expire', '--ignore-missing', '--at', 'now'],
             ['show'], ['rotate'])
{
    my $name = join(' ', @$cmd);

    ($rc, $out, $err) = $t->ctl({ db => $bad }, @$cmd, $id);
    is($rc, 1, "$name: damaged exit code");
    is($out, '', "$name: damaged prints nothing");
    is($err, "apikeyctl: $cmd->[0]: $damaged", "$name: damaged message");
}

# among other ids, from standard input, after an unknown one

($rc, $out, $err) = $t->ctl({ db => $bad, input => "pk0001\nnope\n$id\n" },
                            'revoke', '--ignore-missing', '-');
is($rc, 1, 'revoke - damaged exit code');
is($out, '', 'revoke - damaged prints nothing');
is($err, "apikeyctl: revoke: $damaged", 'revoke - damaged message');

ok(slurp_raw("$bad/data.mdb") eq $before, 'damaged: nothing written');

($rc, $out) = $t->ctl({ db => $bad, input => "plainkey-1500\n" },
                      'verify', '-');
like($out, qr/^valid id=$id\b/, 'damaged: the key still valid');

# an id no record holds is unknown, as before

($rc, $out, $err) = $t->ctl({ db => $bad }, 'revoke', 'pk9999');
is($rc, 3, 'unknown id exit code');
is($err, qq{apikeyctl: revoke: no key with id "pk9999"\n},
   'unknown id message');

($rc, $out, $err) = $t->ctl({ db => $bad }, 'show', 'pk9999');
is($rc, 3, 'show unknown id exit code');

ok(slurp_raw("$bad/data.mdb") eq $before, 'unknown: nothing written');

done_testing();
