#!/usr/bin/perl

# Tests apikeyctl stats on a real database: keys by status for a known
# mix, the data file and map sizes, the meta entries, text and JSON that
# agree; reader slots taken by the workers of a running nginx and free
# again once it stops; a damaged record counted, not fatal; usage.

use strict;
use warnings;

use Test::More;

use JSON::PP;
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled write_file);

my $t = Apikey::Harness->new()->require_all();

my $db = $t->db();
my ($rc, $out, $err);

$t->init_db('--map-size', '64m');

# 2 valid, 1 expired, 2 disabled (one of them expired too), 1 not yet
# valid, and 1 revoked, which is gone

my @keys;

push @keys, $t->gen('--id', 'v1', '--expires', '30d');
$t->ctl_ok({ input => "key,id\nimported-key-0001,v2\n" }, 'import', '-');
push @keys, $t->gen('--id', 'e1');
$t->ctl_ok('expire', 'e1', '--at', '2020-01-01T00:00:00Z');
push @keys, $t->gen('--id', 'd1');
push @keys, $t->gen('--id', 'd2');
$t->ctl_ok('expire', 'd2', '--at', '2020-01-01T00:00:00Z');
$t->ctl_ok('disable', 'd1', 'd2');
push @keys, $t->gen('--id', 'n1', '--not-before', '30d');
push @keys, $t->gen('--id', 'r1');
$t->ctl_ok('revoke', 'r1');

# text: one "name: value" line each, the values in one column

sub stats_text {
    my ($rc, $out, $err) = $t->ctl('stats');
    die "stats: exit $rc: $err" if $rc != 0;

    my %s = $out =~ /^(\w+): +(.*)$/mg;
    return (\%s, $out);
}

sub stats_json {
    my ($rc, $out, $err) = $t->ctl('stats', '--format', 'json');
    die "stats --format json: exit $rc: $err" if $rc != 0;

    return (decode_json($out), $out);
}

my ($s, $text) = stats_text();

is_deeply([ @$s{qw(keys valid expired disabled not_yet_valid damaged)} ],
          [ 6, 2, 1, 2, 1, 0 ], 'text: keys by status');
like($text, qr/\A(?:[a-z_]+: +\S.*\n){15}\z/, 'text: 15 named lines');
ok(!grep({ length($_) != 16 } $text =~ /^([a-z_]+: +)/mg),
   'text: the values in one column');
is($s->{data_size}, (-s "$db/data.mdb") . ' bytes', 'text: data_size');
is($s->{map_size}, 64 * 1024 * 1024 . ' bytes', 'text: map_size');
like($s->{map_used}, qr/^(\d+) bytes \((\d+\.\d\d)%\)$/, 'text: map_used');
is($s->{readers_used}, 0, 'text: no readers');
like($s->{readers_free}, qr/^(\d+) of \1$/, 'text: all readers free');
is($s->{format}, 2, 'text: format');
like($s->{fingerprint}, qr/^[0-9a-f]{8}\.\.\.$/, 'text: fingerprint');
like($s->{generation}, qr/^\d+$/, 'text: generation');
like($s->{changed}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'text: changed');

unlike($text, qr/[0-9a-f]{16}/, 'text: no hash');
unlike($text, qr/\Q$_\E/, 'text: no key') for @keys[0 .. 1];

# JSON: the same, numbers as numbers

my ($j, $raw) = stats_json();

is_deeply([ @$j{qw(keys valid expired disabled not_yet_valid damaged)} ],
          [ 6, 2, 1, 2, 1, 0 ], 'json: keys by status');
is($j->{data_size}, -s "$db/data.mdb", 'json: data_size');
is($j->{map_size}, 64 * 1024 * 1024, 'json: map_size');
is($j->{map_used} % 4096, 0, 'json: map_used in pages');
cmp_ok($j->{map_used}, '>=', $j->{data_size}, 'json: map_used');
is($j->{map_used_percent},
   int($j->{map_used} * 10000 / $j->{map_size}) / 100,
   'json: map_used_percent');
is($j->{readers_used}, 0, 'json: readers_used');
is($j->{readers_max}, 510, 'json: readers_max');
is($j->{readers_free}, 510, 'json: readers_free');
is($j->{format}, 2, 'json: format');
is($j->{fingerprint} . '...', $s->{fingerprint}, 'json: fingerprint');
is($j->{generation}, $s->{generation}, 'json: generation');
is($j->{changed}, $s->{changed}, 'json: changed');

like($raw, qr/\A\{[^\n]*\}\n\z/, 'json: one object on one line');
like($raw, qr/"keys":6,/, 'json: a number is not a string');
is(join(',', sort keys %$j),
   join(',', sort qw(keys valid expired disabled not_yet_valid damaged
                     data_size map_size map_used map_used_percent
                     readers_used readers_free readers_max format
                     fingerprint generation changed)),
   'json: the fields');

for my $name (keys %$s) {
    next if $name eq 'readers_free';
    (my $v = $s->{$name}) =~ s/(?: bytes.*|\.\.\.)$//;
    is($v, $j->{$name}, "text and json agree: $name");
}

# a write: one generation more, the change time with it

$t->gen('--id', 'v3');

my ($j2) = stats_json();
is($j2->{generation}, $j->{generation} + 1, 'a write: generation + 1');
is($j2->{keys}, 7, 'a write: one key more');
is($j2->{valid}, 3, 'a write: one valid key more');
cmp_ok($j2->{changed}, 'ge', $j->{changed}, 'a write: changed');

# reader slots: one per worker while nginx runs, free once it stops

$t->write_config(<<'EOF', workers => 2);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            return 200 "$apikey_id\n";
        }
    }
EOF

$t->start();

is($t->get('/', 'X-API-Key' => $keys[0])->{body}, "v1\n", 'nginx: a key');

my $end = time() + scaled(5);
my $j3;

do {
    ($j3) = stats_json();
    sleep 0.1 if $j3->{readers_used} < 2;
} while ($j3->{readers_used} < 2 && time() < $end);

is($j3->{readers_used}, 2, 'nginx running: a slot for each worker');
is($j3->{readers_free}, $j3->{readers_max} - 2, 'nginx running: free');

$t->stop();

my ($j4) = stats_json();
is($j4->{readers_used}, 0, 'nginx stopped: the slots free again');
is($j4->{readers_free}, $j4->{readers_max}, 'nginx stopped: free');

# a record that does not decode is counted, and the rest still are

SKIP: {
    skip 'no mdb_load (lmdb-utils)', 3 unless -x '/usr/bin/mdb_load';

    my $bad = $t->prefix() . '/db-damaged';

    $t->init_db({ db => $bad });
    $t->ctl_ok({ db => $bad }, 'gen', '--id', 'v1');
    $t->no_check($bad);

    open my $fh, '|-', "/usr/bin/mdb_load -s keys $bad"
        or die "mdb_load: $!";
    print $fh "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
              . ' ' . ('ab' x 32) . "\n 01ff00\nDATA=END\n";
    close $fh;

    ($rc, $out, $err) = $t->ctl({ db => $bad }, 'stats', '--format', 'json');
    is($rc, 0, 'damaged record: exit code');
    my $j5 = decode_json($out);
    is($j5->{keys}, 2, 'damaged record: counted among the keys');
    is($j5->{damaged}, 1, 'damaged record: counted as damaged');
}

# usage and errors

($rc, $out, $err) = $t->ctl('stats', 'extra');
is($rc, 2, 'an argument: exit code');
like($err, qr/^apikeyctl: stats: unexpected argument "extra"\nusage:\n  apikeyctl stats \[--format text\|json\]\n/,
     'an argument: message');

($rc, $out, $err) = $t->ctl('stats', '--format', 'csv');
is($rc, 2, 'bad format: exit code');
like($err, qr/^apikeyctl: stats: invalid format "csv"/, 'bad format: message');
is($out, '', 'bad format: nothing on stdout');

($rc, $out, $err) = $t->ctl('stats', '--format');
is($rc, 2, 'format without a value: exit code');

write_file($t->prefix() . '/other.secret', ('5a' x 32) . "\n");

($rc, $out, $err) = $t->ctl({ secret => $t->prefix() . '/other.secret' },
                            'stats');
is($rc, 1, 'another secret: exit code');
like($err, qr/database was made with another secret/,
     'another secret: message');
is($out, '', 'another secret: nothing on stdout');

($rc, $out, $err) = $t->ctl({ db => $t->prefix() . '/none' }, 'stats');
is($rc, 1, 'no database: exit code');
like($err, qr/does not exist/, 'no database: message');

$t->check_log();

done_testing();
