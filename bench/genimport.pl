#!/usr/bin/perl
#
# Import input for the import benchmark and the SIGKILL test: N random
# keys of the generated shape ("ak_", 32 base62 characters and the
# six-character CRC-32 checksum apikeyctl checks), as CSV.
#
# usage: genimport.pl [--id] [--seed S] N FILE
#
#   --id      a second column, "id", with "k" and the row number
#   --seed S  srand(S): the same file for the same S

use strict;
use warnings;

use Compress::Zlib qw(crc32);

my ($ids, $seed) = (0, 1);

while (@ARGV && $ARGV[0] =~ /^--/) {
    my $opt = shift @ARGV;
    if ($opt eq '--id') { $ids = 1 }
    elsif ($opt eq '--seed') { $seed = shift @ARGV }
    else { die "unknown option $opt\n" }
}

die "usage: genimport.pl [--id] [--seed S] N FILE\n"
    unless @ARGV == 2 && $ARGV[0] =~ /^\d+$/;

my ($n, $file) = @ARGV;
my @b62 = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');

srand($seed);

open(my $f, '>', "$file.tmp") or die "$file.tmp: $!\n";
print $f $ids ? "key,id\n" : "key\n";

my $buf = '';

for my $i (1 .. $n) {
    my $k = 'ak_' . join('', map { $b62[rand 62] } 1 .. 32);
    my $crc = crc32($k);
    my $sum = '';
    for (1 .. 6) { $sum = $b62[$crc % 62] . $sum; $crc = int($crc / 62) }
    $buf .= $ids ? "$k$sum,k$i\n" : "$k$sum\n";
    if (length $buf > 65536) { print $f $buf; $buf = '' }
}

print $f $buf;
close $f or die "$file.tmp: $!\n";
rename "$file.tmp", $file or die "$file: $!\n";
