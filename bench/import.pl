#!/usr/bin/perl
#
# make bench-import: the import rate of apikeyctl, each case beside
# mdb_load of the same records (the database apikeyctl made, dumped with
# "mdb_dump -s keys" and "-s ids", loaded into a fresh environment).
#
#   1M      1,000,000 generated-shape keys into an empty database, CSV with
#           a "key" column only, then with "key,id" (target 500,000 keys/s)
#   replace --replace --force of another 1,000,000 keys over those
#   10M     10,000,000 keys into an empty database (skipped by --no-10m)
#
# Each line: wall time, CPU time (user + system), keys a second and the
# peak resident memory (GNU time, /usr/bin/time -f %M).  Writes a markdown table
# to bench/results/import.md (or --out FILE) and prints it.
#
# usage: bench/import.pl [--build DIR] [--work DIR] [--no-10m] [--n N]
#                        [--out FILE]

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use Getopt::Long;
use POSIX qw(strftime);
use Time::HiRes qw(time);

my $root = dirname(dirname(__FILE__));
$root = '.' if $root eq '';

my %o = (build => "$root/build", work => undef, '10m' => 1, n => 1000000,
         out => "$root/bench/results/import.md");

GetOptions(\%o, 'build=s', 'work=s', '10m!', 'n=i', 'out=s')
    or die "usage: bench/import.pl [--build DIR] [--work DIR] [--no-10m] "
           . "[--n N] [--out FILE]\n";

my $ctl = "$o{build}/apikeyctl";
-x $ctl or die "bench: $ctl: not built (make)\n";

my $w = $o{work} // "$o{build}/bench/import";
remove_tree($w);
make_path($w);

my $gen = "$root/bench/genimport.pl";
my @rows;

sub logmsg { printf STDERR "[bench-import] %s\n", "@_" }

# run CMD, its output to files; returns (wall s, cpu s, peak KB), from
# GNU time: its own wall clock, user + system, maximum resident size

sub measure {
    my (@cmd) = @_;

    my $rc = system('/usr/bin/time', '-f', '%e %U %S %M', '-o', "$w/time",
                    'sh', '-c', 'exec "$@" > "$0.out" 2> "$0.err"', $w . '/cmd',
                    @cmd);

    die "bench: @cmd: exit " . ($rc >> 8) . ": " . slurp("$w/cmd.err")
        if $rc;

    my ($wall, $user, $sys, $peak) = split ' ', (slurp("$w/time") =~
        /^([\d.]+ [\d.]+ [\d.]+ \d+)$/m)[0] // die "bench: time: "
        . slurp("$w/time");

    return ($wall, $user + $sys, $peak);
}

sub slurp { local (@ARGV, $/) = @_; return <> // '' }

sub fresh {
    my ($name) = @_;
    my $d = "$w/$name";
    remove_tree($d);
    make_path($d);
    system("$ctl -d $d/db -s $d/secret init > /dev/null 2>&1") == 0
        or die "bench: init failed\n";
    return $d;
}

# mdb_load of what apikeyctl wrote: the same records, each tree

sub mdb_load_of {
    my ($d) = @_;

    for my $s (qw(keys ids)) {
        system("mdb_dump -s $s $d/db > $d/$s.dump") == 0
            or die "bench: mdb_dump -s $s failed\n";
    }

    remove_tree("$d/load");
    make_path("$d/load");

    my ($wall, $cpu, $peak) = (0, 0, 0);

    for my $s (qw(keys ids)) {
        my @m = measure('mdb_load', '-s', $s, '-f', "$d/$s.dump",
                        "$d/load");
        $wall += $m[0];
        $cpu += $m[1];
        $peak = $m[2] if $m[2] > $peak;
    }

    unlink "$d/keys.dump", "$d/ids.dump";
    remove_tree("$d/load");

    return ($wall, $cpu, $peak);
}

sub row {
    my ($case, $tool, $n, $wall, $cpu, $peak) = @_;
    push @rows, [$case, $tool, $n, $wall, $cpu, $n / ($wall || 1e-9),
                 $peak];
    logmsg(sprintf "%-28s %-18s %9d keys %7.2f s %8.0f keys/s %7.0f MB",
           $case, $tool, $n, $wall, $n / ($wall || 1e-9), $peak / 1024);
}

sub case {
    my ($case, $file, $n, @import) = @_;

    my $d = fresh($case =~ s/\W+/-/gr);

    if (@import && $import[0] eq 'over') {
        shift @import;
        my $first = shift @import;
        system("$ctl -d $d/db -s $d/secret import $first >/dev/null 2>&1")
            == 0 or die "bench: the first import failed\n";
    }

    row($case, 'apikeyctl import', $n,
        measure($ctl, '-d', "$d/db", '-s', "$d/secret", 'import', @import,
                $file));
    print STDERR '    ', slurp("$w/cmd.err");

    row($case, 'mdb_load', $n, mdb_load_of($d));

    remove_tree($d);
}

my $n = $o{n};

logmsg("input: $n keys, with and without an id column, and another $n");
system($^X, $gen, '--seed', 1, $n, "$w/keys.csv") == 0 or die;
system($^X, $gen, '--seed', 1, '--id', $n, "$w/keys-id.csv") == 0 or die;
system($^X, $gen, '--seed', 2, $n, "$w/other.csv") == 0 or die;

my $l = $n >= 1000000 ? ($n / 1000000) . 'M' : $n;

case("$l keys", "$w/keys.csv", $n);
case("$l keys, with ids", "$w/keys-id.csv", $n);
case("--replace $l over $l", "$w/other.csv", $n,
     'over', "$w/keys.csv", '--replace', '--force');

unlink "$w/keys.csv", "$w/keys-id.csv", "$w/other.csv";

if ($o{'10m'}) {
    my $big = 10 * $n;
    my $bl = $big >= 1000000 ? ($big / 1000000) . 'M' : $big;
    logmsg("input: $big keys");
    system($^X, $gen, '--seed', 3, $big, "$w/big.csv") == 0 or die;
    case("$bl keys", "$w/big.csv", $big);
    unlink "$w/big.csv";
}

# the table

my $cpus = `nproc` // '?';
chomp $cpus;

my $md = "# apikeyctl import against mdb_load\n\n"
    . strftime('%Y-%m-%d %H:%M UTC', gmtime) . ", $cpus CPUs, "
    . "`bench/import.pl` (`make bench-import`).  Keys of the generated "
    . "shape (`ak_`, 32 base62 characters, checksum), CSV; apikeyctl "
    . "hashes each key.  mdb_load loads the records apikeyctl wrote "
    . "(`mdb_dump -s keys`, `-s ids`) into a fresh environment.  Peak: "
    . "the maximum resident size of the process.\n\n"
    . "| case | tool | keys | wall s | CPU s | keys/s | peak MB |\n"
    . "|---|---|---:|---:|---:|---:|---:|\n";

for my $r (@rows) {
    $md .= sprintf "| %s | %s | %d | %.2f | %.2f | %.0f | %.0f |\n",
        $r->[0], $r->[1], $r->[2], $r->[3], $r->[4], $r->[5], $r->[6] / 1024;
}

make_path(dirname($o{out}));
open(my $f, '>', $o{out}) or die "$o{out}: $!\n";
print $f $md;
close $f or die "$o{out}: $!\n";

print $md;
remove_tree($w);
