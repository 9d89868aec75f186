#!/usr/bin/perl
#
# What apikey_metrics costs a request, in instructions (callgrind).
#
# The same nginx configuration twice, a single process ("master_process
# off", as bench/cgmeasure.pl needs), a location with "apikey on" and
# empty_gif: once with a location "= /metrics { apikey_metrics; }" beside
# it (which makes the zone and turns counting on), once with the same
# location serving empty_gif instead, so that only the counting differs.
# For a valid, a missing and an unknown key, bench/cgmeasure.pl gives the
# instructions a request; the difference is the cost of counting.  Each
# configuration is measured --runs times (2): the spread of the runs says
# how far the difference can be trusted.
#
# usage: metrics_cost.pl [--build DIR] [--nginx PATH] [--out FILE]
#            [--counts N1,N2] [--runs R]
#
# Writes a markdown table to --out (bench/results/metrics.md) and prints
# it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use Getopt::Long;
use IO::Socket::INET;
use POSIX qw(strftime);

my $root = abs_path("$FindBin::Bin/..");

my %o = (build => "$root/build", nginx => $ENV{NGINX_BIN} // '/usr/sbin/nginx',
         out => "$root/bench/results/metrics.md", counts => '2000,12000',
         runs => 2);
GetOptions(\%o, 'build=s', 'nginx=s', 'out=s', 'counts=s', 'runs=i')
    or die "usage: see $0\n";

$o{build} = abs_path($o{build});

my $ctl = "$o{build}/apikeyctl";
my $module = "$o{build}/ngx_http_apikey_module.so";

-x $ctl or die "metrics_cost: no $ctl (run make)\n";
-f $module or die "metrics_cost: no $module (run make)\n";

my $w = "$o{build}/bench/metrics";
remove_tree($w);
make_path("$w/db");

sub run {
    my (@cmd) = @_;
    my $out = `@cmd`;
    die "metrics_cost: @cmd: exit " . ($? >> 8) . "\n" if $?;
    return $out;
}

my @g = ('-d', "$w/db", '-s', "$w/secret");

run($ctl, @g, 'init', '>/dev/null');
run($ctl, @g, 'gen', '--count', '999', '>/dev/null');
my $key = run($ctl, @g, 'gen', '--id', 'bench');
chomp $key;

# a key of the right shape from another database: unknown

make_path("$w/other");
run($ctl, '-d', "$w/other", '-s', "$w/secret", 'init', '>/dev/null');
my $unknown = run($ctl, '-d', "$w/other", '-s', "$w/secret", 'gen');
chomp $unknown;

sub port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1) or die "port: $!";
    my $p = $s->sockport();
    close $s;
    return $p;
}

my @cases = ("valid=200=X-API-Key: $key", 'missing=401',
             "unknown=401=X-API-Key: $unknown");

my %ir;

for my $variant (qw(off on)) {
    for my $run (1 .. $o{runs}) {
        my $prefix = "$w/$variant-$run";
        make_path("$prefix/logs");

        my $port = port();

        # the same locations in both: only the counting differs

        my $metrics = $variant eq 'on'
            ? "        location = /metrics { apikey_metrics; }\n"
            : "        location = /metrics { empty_gif; }\n";

        open my $fh, '>', "$prefix/nginx.conf" or die $!;
        print $fh <<"EOF";
load_module $module;
daemon off;
master_process off;
error_log $prefix/logs/error.log notice;
pid $prefix/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    keepalive_requests 1000000;
    apikey_db $w/db;
    apikey_secret $w/secret;
    server {
        listen 127.0.0.1:$port;
        server_name bench;
        location / { apikey on; empty_gif; }
$metrics    }
}
EOF
        close $fh;

        my $out = run('perl', "$FindBin::Bin/cgmeasure.pl", '--prefix',
                      "$prefix/", '--conf', "$prefix/nginx.conf",
                      '--port', $port, '--out', "$prefix/cg",
                      '--counts', $o{counts}, '--nginx', $o{nginx},
                      map { "'$_'" } @cases);

        for (split /\n/, $out) {
            my ($name, $st, $ipr) = split /\t/;
            push @{$ir{$name}{$variant}}, $ipr;
        }
    }
}

sub mean {
    my $s = 0;
    $s += $_ for @_;
    return $s / @_;
}

my $md = "# apikey_metrics: instructions a request\n\n"
    . "`bench/metrics_cost.pl`, "
    . strftime('%Y-%m-%d', gmtime) . ", nginx "
    . (`$o{nginx} -v 2>&1` =~ m{nginx/(\S+)})[0]
    . ", callgrind Ir a request (cgmeasure.pl, counts $o{counts}, "
    . "$o{runs} runs each), one single-process nginx, 1,000 keys.\n\n"
    . "| case | without apikey_metrics | with apikey_metrics | cost |\n"
    . "|---|---|---|---|\n";

for my $name (qw(valid missing unknown)) {
    my $off = $ir{$name}{off};
    my $on = $ir{$name}{on};
    $md .= sprintf "| %s | %s | %s | %+.1f |\n", $name,
        join(' / ', map { sprintf '%.1f', $_ } @$off),
        join(' / ', map { sprintf '%.1f', $_ } @$on),
        mean(@$on) - mean(@$off);
}

$md .= "\nWith apikey_metrics, a decided request adds one increment to "
    . "this process's slot (`ngx_http_apikey_metrics_request()`), and a "
    . "lookup another (`apikey_lookups_total`); the runs of one "
    . "configuration show how much the figure moves by itself.\n";

make_path($1) if $o{out} =~ m{^(.*)/[^/]+$};
open my $fh, '>', $o{out} or die "$o{out}: $!";
print $fh $md;
close $fh;

print $md;
