#!/usr/bin/perl
#
# Turns the raw results of bench/run.sh (machine.tsv, callgrind.tsv,
# wrk.tsv, startup.tsv, import.tsv in DIR) into DIR/results.md and the
# data files of bench/charts.gp (ir.dat, wrk.dat, startup.dat).
#
# usage: report.pl DIR

use strict;
use warnings;

my ($dir) = @ARGV;
die "usage: report.pl DIR\n" unless defined $dir && -d $dir;

sub tsv {
    my ($file) = @_;
    open(my $f, '<', "$dir/$file") or return ();
    my $head = <$f>;
    chomp $head;
    my @cols = split /\t/, $head;
    my @rows;
    while (<$f>) {
        chomp;
        next unless length;
        my %r;
        @r{@cols} = split /\t/;
        push @rows, \%r;
    }
    return @rows;
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub label {
    my ($n) = @_;
    return $n / 1_000_000 . 'M' if $n >= 1_000_000 && $n % 1_000_000 == 0;
    return $n / 1000 . 'k' if $n >= 1000 && $n % 1000 == 0;
    return $n;
}

sub commas {
    my ($n) = @_;
    my $s = sprintf('%.0f', $n);
    1 while $s =~ s/^(-?\d+)(\d{3})/$1,$2/;
    return $s;
}

my %machine;
{
    open(my $f, '<', "$dir/machine.tsv") or die "$dir/machine.tsv: $!\n";
    while (<$f>) {
        chomp;
        my ($k, $v) = split /\t/, $_, 2;
        $machine{$k} = $v;
    }
}

my @cg = tsv('callgrind.tsv');
my @wrk = tsv('wrk.tsv');
my @st = tsv('startup.tsv');
my @imp = tsv('import.tsv');

my (@order, %seen, %ir, %kind, %keys);
for my $r (@cg) {
    my $c = $r->{contender};
    push @order, $c unless $seen{$c}++;
    $ir{$c}{ $r->{case} } = $r->{ir_per_request};
    $kind{$c} = $r->{kind};
    $keys{$c} = $r->{keys};
}
for my $r (@wrk) {
    push @order, $r->{contender} unless $seen{ $r->{contender} }++;
}

my $big = $machine{big};

my %desc = (
    none    => 'no check (empty_gif, the ceiling)',
    apikey  => 'apikey on',
    map     => 'map $http_x_api_key recipe',
    basic   => 'auth_basic ({SHA} user file)',
    authreq => 'auth_request to an internal location (1-key compare)',
    lua     => 'Lua access_by_lua, keys in a table',
);

my $out = '';
my $p = sub { $out .= join('', @_) };

$p->("# ngx_http_apikey_module benchmark\n\n");
$p->("Machine: $machine{cpu}, $machine{nproc} CPUs, $machine{memory}, ",
     "$machine{kernel}; $machine{nginx}; $machine{valgrind}; ",
     "$machine{wrk}. Date: $machine{date}. Mode: $machine{mode}. ",
     "Commit $machine{commit}, module .so sha256 $machine{module}.\n\n");
$p->("One nginx worker per contender, access_log off, keep-alive ",
     "requests to `empty_gif` on 127.0.0.1, the same key set for every ",
     "contender (40-character keys). Reproduce with `make bench` ",
     "(`make bench-quick` for a short run).\n\n");

# --- instructions ----------------------------------------------------------

my ($n1, $n2) = split /,/, $machine{cg_counts};
$p->("## Instructions per request (callgrind)\n\n");
$p->("`valgrind --tool=callgrind` on a single-process nginx, ",
     "(Ir($n2) - Ir($n1)) / ", $n2 - $n1, " keep-alive requests on one ",
     "connection each, so start-up and connection set-up cancel out. ",
     "Deterministic: the figure to optimise against. \"+Ir\" is the ",
     "difference to the ceiling serving the same request (with the ",
     "X-API-Key header for a valid or unknown key, without it for a ",
     "missing one).\n\n");
$p->("| contender | keys | key | Ir/request | +Ir | × ceiling |\n");
$p->("|---|---:|---|---:|---:|---:|\n");

my %base = (valid => $ir{none}{valid}, unknown => $ir{none}{valid},
            missing => $ir{none}{missing});
my %plus;
my @offscale;
open(my $ird, '>', "$dir/ir.dat") or die;
print $ird "# contender valid unknown missing (Ir/request)\n";
for my $c (@order) {
    next unless $ir{$c};
    for my $case (qw(valid unknown missing)) {
        my $v = $ir{$c}{$case} // next;
        my $b = $base{$case};
        my $d = defined $b ? $v - $b : undef;
        $plus{$c}{$case} = $d;
        $p->(sprintf "| %s | %s | %s | %s | %s | %.3f |\n",
             $c eq 'none' ? 'none' : "$c", $c eq 'none' ? '-' :
             $kind{$c} eq 'basic' ? label($keys{$c}) . ' users'
                                  : label($keys{$c}),
             $kind{$c} eq 'basic' ? 'valid (user in the middle)' : $case,
             commas($v), $c eq 'none' ? '-' : sprintf('%+d', $d),
             $b ? $v / $b : 0);
    }
    if ($ir{none}{valid} && ($ir{$c}{valid} // 0) > 5 * $ir{none}{valid}) {
        push @offscale, sprintf("%s %s", $c, commas($ir{$c}{valid}));
        next;
    }
    printf $ird "%s %s %s %s\n", $c,
        map { defined $ir{$c}{$_} ? sprintf('%.0f', $ir{$c}{$_}) : '-' }
            qw(valid unknown missing);
}
close $ird;
open(my $inc, ">", "$dir/charts.inc") or die;
printf $inc "ir_note = \"%s\"\n",
    @offscale ? "\\n(off the scale, not shown: " . join(", ", @offscale) . ")" : "";
close $inc;
$p->("\n");
$p->("The map recipe uses `map_hash_max_size` = keys + 1,000 and `map_hash_bucket_size 128`; at 1M keys and more nginx warns that it \"could not build optimal map_hash\" and ignores the bucket size (a hash of this many 40-byte keys has no layout that fits fixed buckets), so some lookups walk a longer bucket. Its start-up cost is dominated by duplicate detection while the map is read, which grows much faster than the key count (each key is checked against a table of 10,007 lists in ngx_hash_add_key).\n\n");
$p->("Contenders: ", join('; ', map { "`$_`: $desc{$_}" }
     grep { my $k = $_; grep { $kind{$_} eq $k } keys %kind }
     qw(none apikey map basic authreq lua)), ".\n\n");
if ($machine{lua} !~ /^yes/) {
    $p->("Lua: skipped ($machine{lua}).\n\n");
}

# --- throughput ------------------------------------------------------------

my %rps;
my %ratio;
my %p99;
for my $r (@wrk) {
    $rps{ $r->{round} }{ $r->{contender} } = $r->{rps};
    push @{ $p99{ $r->{contender} } }, $r->{p99_ms};
}
for my $round (keys %rps) {
    my $ceil = $rps{$round}{none} or next;
    for my $c (keys %{ $rps{$round} }) {
        push @{ $ratio{$c} }, $rps{$round}{$c} / $ceil;
    }
}

$p->("## Throughput (wrk)\n\n");
$p->("All contenders run at once; $machine{wrk_desc}. Every round runs each ",
     "contender once, in a rotating order; the ratio is to the ceiling's ",
     "requests/s in the same round. A 2-CPU machine: wrk and the nginx ",
     "worker share it, so the spread is wide; the callgrind figures ",
     "above are the deterministic ones.\n\n");
$p->("| contender | requests/s (median) | ratio to ceiling (median) | ",
     "min..max | p99 latency ms (median) |\n");
$p->("|---|---:|---:|---|---:|\n");
open(my $wd, '>', "$dir/wrk.dat") or die;
print $wd "# contender median min max (ratio to ceiling)\n";
for my $c (@order) {
    next unless $ratio{$c};
    my @rs = map { $rps{$_}{$c} } grep { defined $rps{$_}{$c} } keys %rps;
    my @r = sort { $a <=> $b } @{ $ratio{$c} };
    my $med = median(@r);
    $p->(sprintf "| %s | %s | %.3f | %.3f..%.3f | %.2f |\n", $c,
         commas(median(@rs)), $med, $r[0], $r[-1], median(@{ $p99{$c} }));
    printf $wd "%s %.4f %.4f %.4f\n", $c, $med, $r[0], $r[-1];
}
close $wd;
$p->("\n");

# --- start-up and memory ---------------------------------------------------

my %su;
for my $r (@st) {
    my $k = "$r->{kind}\t$r->{keys}";
    push @{ $su{$k}{startup} }, $r->{startup_s};
    push @{ $su{$k}{private} }, $r->{private_kb};
    push @{ $su{$k}{rss} }, $r->{rss_kb};
    push @{ $su{$k}{master} }, $r->{master_rss_kb};
}

$p->("## Start-up and memory against the key count\n\n");
$p->("Start-up: from exec of nginx (master and one worker) to the first ",
     "response. Memory of the worker after 1,000 requests, from ",
     "/proc/PID/smaps_rollup: private = Private_Clean + Private_Dirty; ",
     "RSS includes pages shared with the master (the map's hash table is ",
     "built by the master and shared copy-on-write) and, for apikey, the ",
     "LMDB pages read so far. Median of the runs.\n\n");
$p->("| contender | keys | runs | start-up s | worker private MB | ",
     "worker RSS MB | master RSS MB |\n");
$p->("|---|---:|---:|---:|---:|---:|---:|\n");
my @sizes = split ' ', $machine{sizes};
open(my $sd, '>', "$dir/startup.dat") or die;
print $sd "# keys apikey_startup_s map_startup_s apikey_private_mb ",
          "map_private_mb apikey_rss_mb map_rss_mb\n";
my %stmed;
for my $kind (qw(apikey map)) {
    for my $n (@sizes) {
        my $s = $su{"$kind\t$n"} or next;
        my %m = map { $_ => median(@{ $s->{$_} }) } keys %$s;
        $stmed{$kind}{$n} = \%m;
        $p->(sprintf "| %s | %s | %d | %.3f | %.1f | %.1f | %.1f |\n",
             $kind, label($n), scalar @{ $s->{startup} }, $m{startup},
             $m{private} / 1024, $m{rss} / 1024, $m{master} / 1024);
    }
}
for my $n (@sizes) {
    my @v;
    for my $kind (qw(apikey map)) {
        my $m = $stmed{$kind}{$n};
        push @v, $m ? $m->{startup} : '-';
    }
    for my $f (qw(private rss)) {
        for my $kind (qw(apikey map)) {
            my $m = $stmed{$kind}{$n};
            push @v, $m ? sprintf('%.2f', $m->{$f} / 1024) : '-';
        }
    }
    print $sd join(' ', $n, @v), "\n";
}
close $sd;
$p->("\n");

# --- import ----------------------------------------------------------------

if (@imp) {
    $p->("## Import rate\n\n");
    $p->("`apikeyctl import --format csv` of ", label($imp[0]{keys}),
         " keys into a fresh database (hashing every key, writing the ",
         "keys and ids databases) against `mdb_load` of the same records ",
         "(`mdb_dump` of the imported database; `-s keys` then `-s ids` ",
         "into a fresh environment). Wall time decides keys/s; CPU is user + ",
         "system time of the tool.\n\n");
    $p->("| tool | keys | seconds | CPU seconds | keys/s |\n",
         "|---|---:|---:|---:|---:|\n");
    for my $r (@imp) {
        $p->(sprintf "| %s | %s | %.2f | %.2f | %s |\n", $r->{tool},
             commas($r->{keys}), $r->{ms} / 1000, $r->{cpu_ms} / 1000,
             commas($r->{keys_per_s}));
    }
    $p->("\n");
}

my @rv = tsv('revoke.tsv');
if (@rv) {
    my @l = sort { $a <=> $b } map { $_->{latency_ms} } @rv;
    my $acc = 0;
    $acc += $_->{accepted_after} for @rv;
    $p->("## Revocation latency\n\n");
    $p->("From `apikeyctl revoke ID` returning to the first rejected ",
         "request (a new connection per request), against the running ",
         "nginx, ", scalar @rv, " runs: median ",
         sprintf('%.2f', median(@l)), " ms (", sprintf('%.2f', $l[0]),
         "..", sprintf('%.2f', $l[-1]), " ms); requests still accepted ",
         "after the revoke returned: $acc.",
         (defined $rv[0]{request_ms}
          ? sprintf(" For scale, one request made the same way before the revoke: median %.2f ms, so the revoke is visible to the very next request.", median(map { $_->{request_ms} } @rv))
          : ""), "\n\n");
}

# --- targets ---------------------------------------------------------------

my @t;
my $ab = "apikey-" . label($big);
if (defined $plus{$ab}{valid}) {
    my $v = $plus{$ab}{valid};
    push @t, ["apikey $big keys: valid key adds ≤ 3,000 Ir/request",
              sprintf('%+d', $v), $v <= 3000];
    for my $case (qw(unknown missing)) {
        my $u = $plus{$ab}{$case} // next;
        push @t, ["apikey $big keys: $case key adds no more than a valid one",
                  sprintf('%+d', $u), $u <= $v + 0.5];
    }
}
my @huge = grep { $_ >= 10_000_000 } @sizes;
for my $h (@huge) {
    my $ah = "apikey-" . label($h);
    next unless defined $ir{$ah}{valid} && defined $ir{$ab}{valid};
    my $r = $plus{$ah}{valid} / ($plus{$ab}{valid} || 1);
    push @t, ["apikey " . label($h) . ": +Ir at most 10% over " . label($big),
              sprintf('%+d vs %+d (×%.3f)', $plus{$ah}{valid},
                      $plus{$ab}{valid}, $r), $r <= 1.10];
}
for my $n (grep { $_ >= $big } @sizes) {
    my $c = "apikey-" . label($n);
    next unless $ratio{$c};
    my $m = median(@{ $ratio{$c} });
    push @t, ["wrk throughput of $c ≥ 0.93 of the ceiling",
              sprintf('%.3f', $m), $m >= 0.93];
}
if ($stmed{apikey} && @sizes > 1) {
    my ($lo, $hi) = ($sizes[0], $sizes[-1]);
    my ($ma, $mb) = ($stmed{apikey}{$lo}, $stmed{apikey}{$hi});
    if ($ma && $mb) {
        push @t, ["apikey start-up flat from " . label($lo) . " to "
                  . label($hi) . " keys",
                  sprintf('%.3f s → %.3f s', $ma->{startup}, $mb->{startup}),
                  $mb->{startup} <= $ma->{startup} * 1.5 + 0.05];
        push @t, ["apikey worker private memory flat from " . label($lo)
                  . " to " . label($hi) . " keys",
                  sprintf("%.1f MB → %.1f MB", $ma->{private} / 1024,
                          $mb->{private} / 1024),
                  $mb->{private} <= $ma->{private} * 1.2 + 1024];
    }
}
if (@t) {
    $p->("## Targets\n\n| target | measured | |\n|---|---|---|\n");
    for my $x (@t) {
        $p->("| $x->[0] | $x->[1] | ", $x->[2] ? 'met' : '**not met**',
             " |\n");
    }
    $p->("\n");
}

# --- profile ---------------------------------------------------------------

my ($prof) = glob("$dir/profile-*.txt");
if ($prof) {
    (my $base = $prof) =~ s{.*/}{};
    $p->("## Where the instructions go: $ab, valid key\n\n");
    $p->("Per request, per function, the difference of two dumps as above ",
         "(top entries; full list in [$base]($base)).\n\n```\n");
    open(my $f, '<', $prof) or die;
    my $n = 0;
    while (<$f>) {
        $n = 0 if /^(In|Ex)clusive/;
        $p->($_) if $n++ < 18;
        $p->("...\n\n") if $n == 18;
    }
    $p->("```\n\n");
}

$p->("Charts: [throughput](throughput.png), ",
     "[instructions](instructions.png), [start-up](startup.png), ",
     "[memory](memory.png).\n");

open(my $md, '>', "$dir/results.md") or die;
print $md $out;
close $md;
