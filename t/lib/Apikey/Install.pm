package Apikey::Install;

# What t/install_layout.t and t/install/packages.t share: the fenced
# blocks of README.md's "## Install" section, which they run or compare
# with what is installed.  Core Perl only.

use strict;
use warnings;

use Exporter qw(import);

our @EXPORT_OK = qw(readme_blocks);

# the blocks of the section, in order, as [ language, text ]; none when
# README.md has no such section

sub readme_blocks {
    my ($readme, $heading) = @_;

    open my $fh, '<', $readme or return ();

    my ($in, $lang, $text, @blocks);

    while (my $line = <$fh>) {
        if ($line =~ /^## (.*?)\s*$/) {
            last if $in;
            $in = ($1 eq $heading);
            next;
        }

        next unless $in;

        if (!defined $lang && $line =~ /^```(\w*)\s*$/) {
            ($lang, $text) = ($1, '');

        } elsif (defined $lang && $line =~ /^```\s*$/) {
            push @blocks, [ $lang, $text ];
            undef $lang;

        } elsif (defined $lang) {
            $text .= $line;
        }
    }

    close $fh;

    return @blocks;
}

1;
