#!/usr/bin/perl

# Tests 30 seconds of the soak (bench/soak.pl, make soak): nginx with 2
# workers under the load of Apikey::Load while import, revoke, rotate
# and restore run in loops at once.  Asserted: requests served, no
# wrong decision, no unexpected 5xx, no dropped connection, no failed
# command, no alert, the database clean, a revocation measured, worker
# RSS and database size flat after the warm-up.  The revocation latency
# percentiles go to diag: the 10 ms bound is make soak's, the machine
# that runs the tests is shared.
#
# make test runs t/ twice, against Debian's nginx and then nginx built
# from a release tree (mk/matrix.mk, APIKEY_BUILD under matrix/): the
# soak runs in the first only.  TEST_APIKEY_SOAK=1 runs it anyway.

use strict;
use warnings;

use Test::More;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

my $build = $ENV{APIKEY_BUILD} // '';

plan(skip_all => 'the soak runs once per make test, against Debian\'s'
                 . ' nginx; this is the matrix run (' . $build . ')')
    if $build =~ m{/matrix/[^/]+/apikey/?$} && !$ENV{TEST_APIKEY_SOAK};

plan(skip_all => 'not under valgrind: the soak is a load')
    if $ENV{TEST_NGINX_VALGRIND};

my $out = $t->prefix() . '/results';
my @cmd = ($^X, "$t->{root}/bench/soak.pl", '--duration', '30s',
           '--build', $ENV{APIKEY_BUILD} || "$t->{root}/build",
           '--nginx', $t->{nginx}, '--out', $out, '--no-chart',
           '--p99-limit', 0);

my $report = `@cmd 2>&1`;
my $rc = $? >> 8;

diag($report);

sub field {
    my ($name) = @_;
    my ($v) = $report =~ /^\Q$name\E:\s+(.*)$/m;
    return $v;
}

is($rc, 0, 'soak: exit 0');

my ($requests) = (field('requests served') // '') =~ /^(\d+)/;

cmp_ok($requests // 0, '>=', 1000, 'requests served');
is(field('wrong decisions'), 0, 'no wrong decision');
is(field('unexpected 5xx'), 0, 'no unexpected 5xx');
is(field('dropped'), 0, 'no dropped connection');
like(field('writers') // '', qr/import\ [1-9].*\ revoke\ [1-9].*\ rotate
                                \ [1-9].*\ restore\ [1-9].*;\ 0\ failed/x,
     'each writer loop ran, no command failed');
my ($probed, $first) = (field('revocations probed') // '')
                      =~ /^(\d+), .* in (\d+)$/;

cmp_ok($probed // 0, '>', 0, 'revocations measured');
is($first, $probed, 'the first request after each revoke rejected');
like(field('revocation latency') // '', qr/^p50 [\d.]+ ms/,
     'revocation latency percentiles');
is(field('flat'), 'yes', 'worker RSS and database size flat');
is(field('alerts'), 0, 'no alerts in the error log');
is(field('apikeyctl check'), 'clean', 'the database clean after');
like(field('verdict') // '', qr/^PASS/, 'verdict');

ok(-s "$out/soak.md" && -s "$out/soak.tsv", 'table and samples written');

done_testing();
