#!/usr/bin/perl

# Tests that every libFuzzer target (fuzz/fuzz_*.c, built by "make test"
# when clang can build them) runs its whole corpus in fuzz/corpus/ with
# no crash, no sanitizer report and no failed check: every input that
# once found a defect stays in the corpus, so this is the regression test
# of "make fuzz" in a few seconds.  Without clang's -fsanitize=fuzzer
# the fuzzers are not built, and this test skips.

use strict;
use warnings;

use Test::More;

use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);

my $root = File::Spec->rel2abs(dirname(__FILE__) . '/..');
my $dir = $ENV{APIKEY_FUZZ_BUILD} // "$root/build/fuzz";

my @targets = qw(key auth record time import_csv import_jsonl fields);

my @missing = grep { !-x "$dir/fuzz_$_" } @targets;

plan(skip_all => "fuzzers not built in $dir (no clang with "
                 . "-fsanitize=fuzzer? make fuzz-build)")
    if @missing == @targets;

plan(tests => 3 * @targets);

# libFuzzer adds what it finds to its first directory (an empty one
# here), and writes a failing input to the current one unless told

my $scratch = tempdir('apikey-fuzz-XXXXXX', TMPDIR => 1, CLEANUP => 1);

local $ENV{ASAN_OPTIONS} = 'detect_leaks=1';
local $ENV{UBSAN_OPTIONS} = 'halt_on_error=1:print_stacktrace=1';

for my $t (@targets) {
    my $bin = "$dir/fuzz_$t";
    my $corpus = "$root/fuzz/corpus/$t";

    SKIP: {
        skip "fuzz_$t not built", 3 unless -x $bin;

        mkdir "$scratch/$t";

        my @inputs = glob "$corpus/*";
        ok(@inputs > 0, "$t corpus is not empty");

        my $out = `"$bin" -runs=0 -close_fd_mask=2 \\
                   -artifact_prefix="$scratch/" "$scratch/$t" "$corpus" 2>&1`;
        my $rc = $? >> 8;

        is($rc, 0, "$t replays its corpus") or diag($out);

        my ($n) = $out =~ /^#(\d+)\s+(?:INITED|DONE)/m;
        ok(defined $n && $n >= @inputs, "$t ran every input")
            or diag($out);
    }
}
