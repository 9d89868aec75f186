#!/usr/bin/perl

# Unit tests of the shared core: runs build/core_test (t/unit/core_test.c,
# cmocka, built with ASan and UBSan by "make test") and passes its TAP on.
#
# cmocka 1.1.5 reports a skipped test as "not ok N # SKIP", which prove
# counts as a failure; such lines are rewritten to "ok N # SKIP".  The
# exit status of core_test is passed on, so a crash or a sanitizer report
# fails the test even after the last "ok".

use warnings;
use strict;

use File::Basename qw(dirname);
use File::Spec;

my $root = File::Spec->rel2abs(dirname(__FILE__) . '/..');
my $build = File::Spec->rel2abs($ENV{APIKEY_BUILD} // "$root/build");
my $bin = "$build/core_test";

unless (-x $bin) {
    print "1..0 # SKIP core_test not built (run make test)\n";
    exit 0;
}

$ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP';
$ENV{UBSAN_OPTIONS} //= 'halt_on_error=1:print_stacktrace=1';

$| = 1;

my $pid = open(my $out, '-|') // die "fork() failed: $!\n";

if ($pid == 0) {
    exec $bin or die "exec($bin) failed: $!\n";
}

while (my $line = <$out>) {
    $line =~ s/^not ok (\d+) # SKIP\b/ok $1 # SKIP/;
    print $line;
}

close $out;

my $status = $?;

if ($status & 127) {
    print "# core_test killed by signal " . ($status & 127) . "\n";
    exit 1;
}

exit($status >> 8);
