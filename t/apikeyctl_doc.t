#!/usr/bin/perl

# The man page and the bash completion say what apikeyctl does: the
# synopsis lists exactly the usage lines of "apikeyctl help", every
# command and every flag is described, and the completion offers the
# same commands, flags and --format values, and the ids of a real
# database.

use strict;
use warnings;

use Test::More;
use File::Basename qw(dirname);
use File::Temp qw(tempdir);

use lib 't/lib';
use Apikey::Harness;

my $t = Apikey::Harness->new();
$t->require_apikeyctl();

# the sources beside this test, whichever build dir the test runs with

my $root = dirname(__FILE__) . '/..';
my $bindir = dirname($t->{apikeyctl});
my $man = Apikey::Harness::slurp("$root/tools/apikeyctl.1");
my $completion = "$root/tools/apikeyctl.bash-completion";

# troff to text: escapes off, blanks folded

sub plain {
    my ($s) = @_;
    $s =~ s/\\f[BIRP]//g;
    $s =~ s/\\-/-/g;
    $s =~ s/\s+/ /g;
    $s =~ s/^ | $//g;
    return $s;
}

# usage lines of "apikeyctl help": one per command, continuations joined

my ($rc, $help) = $t->ctl('help');
is($rc, 0, 'help exits 0');

my @usage;
my $in = 0;

for my $line (split /\n/, $help) {
    if ($line =~ /^commands:/) { $in = 1; next }
    next unless $in;
    last if $line eq '';

    if ($line =~ /^  apikeyctl (.*)/) {
        push @usage, $1;
    } elsif (@usage) {
        $usage[-1] .= " $line";
    }
}

@usage = map { plain($_) } @usage;
my %usage = map { (split / /, $_)[0] => $_ } @usage;
my @commands = map { (split / /, $_)[0] } @usage;

cmp_ok(scalar @commands, '>=', 17, 'help lists the commands');

for my $cmd (qw(init gen import rotate revoke disable enable expire list
                show verify hash export stats check backup restore help))
{
    ok(exists $usage{$cmd}, "help lists $cmd");
}

# the synopsis, lines after .PP up to .fi

my ($synopsis) = $man =~ /^\.SH SYNOPSIS\n.*?^\.PP\n(.*?)^\.fi$/ms;
ok(defined $synopsis, 'man page has a synopsis');

my @synopsis;

for my $line (split /\n/, $synopsis // '') {
    if ($line =~ /^apikeyctl (.*)/) {
        push @synopsis, $1;
    } elsif (@synopsis) {
        $synopsis[-1] .= " $line";
    }
}

@synopsis = map { plain($_) } @synopsis;

is_deeply(\@synopsis, \@usage,
          'man page synopsis is the usage of apikeyctl help, line by line');

# each command has its paragraph, naming every flag of its usage

my ($commands) = $man =~ /^\.SH COMMANDS\n(.*?)^\.SH /ms;
ok(defined $commands, 'man page has COMMANDS');
$commands //= '';

my %flags;

for my $cmd (@commands) {
    my @f = $usage{$cmd} =~ /(--[a-z-]+)/g;
    my %seen;
    $flags{$cmd} = [ sort grep { !$seen{$_}++ } @f ];

    ok($commands =~ /^\.TP\n\.BR? \Q$cmd\E\b/m,
       "man page describes $cmd");

    my ($para) = $commands =~ /^\.TP\n\.BR? \Q$cmd\E\b(.*?)(?=^\.TP\n\.BR? [a-z]+\b|\z)/ms;
    $para = plain($para // '');

    for my $flag (@{ $flags{$cmd} }) {
        ok($para =~ /\Q$flag\E\b/, "man page describes $cmd $flag");
    }
}

# global options: those of help are those of the man page

my @gopts = sort $help =~ /^  (-[a-zA-Z]), (--[a-z]+)/mg;
my ($gman) = $man =~ /^\.SH GLOBAL OPTIONS\n(.*?)^\.SH /ms;
my @gman = sort map { plain($_) =~ /(--?[a-zA-Z-]+)/g }
               ($gman // '') =~ /^\.BR (.*)$/mg;
is_deeply(\@gman, \@gopts, 'man page global options are those of help');

# the completion: the same commands and flags, run in a real bash

SKIP: {
    skip 'bash not found', 1 unless -x '/bin/bash';

    my $dir = tempdir(CLEANUP => 1);

    # words of the line, the index of the word being completed

    my $complete = sub {
        my (@words) = @_;

        my $script = "$dir/complete.sh";
        open my $fh, '>', $script or die "$script: $!";
        print $fh "PATH=$bindir:\$PATH\n";
        print $fh ". '$completion'\n";
        print $fh 'COMP_WORDS=(' . join(' ', map { "'$_'" } @words) . ")\n";
        print $fh 'COMP_CWORD=' . $#words . "\n";
        print $fh "_apikeyctl\n";
        print $fh 'printf "%s\n" "${COMPREPLY[@]}"' . "\n";
        close $fh;

        my @out = `bash '$script' 2>&1`;
        chomp @out;
        return [ sort grep { $_ ne '' } @out ];
    };

    is_deeply($complete->('apikeyctl', ''), [ sort @commands ],
              'completion offers every command of help');

    is_deeply($complete->('apikeyctl', 'ro'), ['rotate'],
              'completion completes a command');

    is_deeply($complete->('apikeyctl', '-'),
              [ sort qw(-d --db -s --secret -h --help -V --version) ],
              'completion offers the global options');

    for my $cmd (@commands) {
        is_deeply($complete->('apikeyctl', $cmd, '--'), $flags{$cmd},
                  "completion offers the flags of $cmd");

        my ($formats) = $usage{$cmd} =~ /--format ([a-z|]+)/;
        next unless $formats;

        is_deeply($complete->('apikeyctl', $cmd, '--format', ''),
                  [ sort split /\|/, $formats ],
                  "completion offers the formats of $cmd");
    }

    is_deeply($complete->('apikeyctl', 'list', '--status', ''),
              [ sort qw(valid expired disabled not_yet_valid) ],
              'completion offers the statuses of list');

    # ids, from the database the line names

    $t->init_db();
    $t->gen('--id', 'alpha');
    $t->gen('--id', 'beta');
    $t->gen('--id', 'gamma');

    is_deeply($complete->('apikeyctl', '-d', $t->db, '-s', $t->secret,
                          'revoke', ''),
              [ qw(alpha beta gamma) ],
              'completion offers the ids of the database named by -d');

    is_deeply($complete->('apikeyctl', '-d', $t->db, '-s', $t->secret,
                          'show', 'b'),
              [ 'beta' ], 'completion completes an id');

    is_deeply($complete->('apikeyctl', '-d', "$dir/none", 'revoke', ''), [],
              'completion offers nothing for a database that is not there');
}

done_testing();
