#!/usr/bin/perl
#
# A per-request, per-function profile from two callgrind dumps of the same
# nginx taken after N1 and N2 requests: for every function,
# (Ir(N2) - Ir(N1)) / (N2 - N1), inclusive and exclusive, so that the
# connection set-up cancels out as in the totals.
#
# usage: profile.pl DUMP1 DUMP2 N1 N2 [TOP]

use strict;
use warnings;

my ($d1, $d2, $n1, $n2, $top) = @ARGV;
die "usage: profile.pl DUMP1 DUMP2 N1 N2 [TOP]\n"
    unless defined $n2 && $n2 > $n1;
$top //= 25;

sub annotate {
    my ($file, $inclusive) = @_;
    my %ir;
    my $total;
    open(my $f, '-|', 'callgrind_annotate', '--threshold=100', '--auto=no',
         "--inclusive=$inclusive", $file)
        or die "callgrind_annotate: $!\n";
    while (<$f>) {
        if (/^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?PROGRAM TOTALS/) {
            ($total = $1) =~ tr/,//d;
            next;
        }
        next unless /^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*$/;
        my ($n, $fn) = ($1, $2);
        $n =~ tr/,//d;
        # "file:function [object]" -> "function [object basename]"
        $fn =~ s{^.*?:(?=[^:/]+(?: \[|$))}{};
        $fn =~ s{\[(?:.*/)?([^/\]]+)\]}{[$1]};
        # the same function may be listed twice (absolute and relative
        # source path); keep one
        $ir{$fn} = $n if !defined $ir{$fn} || $n > $ir{$fn};
    }
    close $f;
    my %has_obj;
    for my $fn (keys %ir) {
        $has_obj{$1} = 1 if $fn =~ /^(\S+) \[/;
    }
    delete $ir{$_} for grep { !/ \[/ && $has_obj{$_} } keys %ir;
    return (\%ir, $total);
}

my $per = $n2 - $n1;
my %tot;

for my $mode (['yes', 'inclusive'], ['no', 'exclusive']) {
    my ($pa, $ta) = annotate($d1, $mode->[0]);
    my ($pb, $tb) = annotate($d2, $mode->[0]);
    my %diff;
    for my $fn (keys %$pb) {
        $diff{$fn} = (($pb->{$fn} // 0) - ($pa->{$fn} // 0)) / $per;
    }
    my $total = ($tb - $ta) / $per;
    printf "%s Ir per request (total %.0f), (Ir(%d) - Ir(%d)) / %d\n\n",
        ucfirst $mode->[1], $total, $n2, $n1, $per;
    printf "%10s %6s  %s\n", 'Ir/req', '%', 'function';
    my $i = 0;
    for my $fn (sort { $diff{$b} <=> $diff{$a} || $a cmp $b } keys %diff) {
        last if $i++ >= $top;
        printf "%10.1f %5.1f%%  %s\n", $diff{$fn},
            $total ? 100 * $diff{$fn} / $total : 0, $fn;
    }
    print "\n";
}
# exclusive Ir per request by object (nginx, the module, liblmdb, ...)
{
    my ($pa, $ta) = annotate($d1, 'no');
    my ($pb, $tb) = annotate($d2, 'no');
    my %obj;
    for my $fn (keys %$pb) {
        my ($o) = $fn =~ / \[([^\]]+)\]$/;
        $obj{ $o // '?' } += (($pb->{$fn} // 0) - ($pa->{$fn} // 0)) / $per;
    }
    my $total = ($tb - $ta) / $per;
    print "Exclusive Ir per request by object\n\n";
    printf "%10s %6s  %s\n", 'Ir/req', '%', 'object';
    for my $o (sort { $obj{$b} <=> $obj{$a} } keys %obj) {
        next if abs($obj{$o}) < 0.5;
        printf "%10.1f %5.1f%%  %s\n", $obj{$o},
            $total ? 100 * $obj{$o} / $total : 0, $o;
    }
}
