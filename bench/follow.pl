#!/usr/bin/perl
#
# The synchronisation rate of apikeyctl follow against a real PostgreSQL
# (Debian's server, started in a temporary directory by the tests'
# Apikey::Pg):
#
#   first   1,000,000 rows loaded into apikey_keys with COPY, then
#           "follow --once" into an empty database: one snapshot, one
#           write transaction (target 200,000 rows/s)
#   again   the same 1,000,000 rows over the database that holds them
#           (a full resynchronisation, as after pruned tombstones)
#   changes 100,000 rows updated in PostgreSQL, then "follow --once":
#           the changes after the version in meta, 10 batches
#
# Each line: wall time, CPU time of apikeyctl (user + system), rows a
# second and the peak resident memory (GNU time).  Writes a markdown
# table to bench/results/follow.md (or --out FILE) and prints it.
#
# usage: bench/follow.pl [--build DIR] [--n N] [--out FILE]

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use Getopt::Long;
use POSIX qw(strftime);
use Time::HiRes qw(time);

my $root;

BEGIN {
    $root = dirname(dirname(__FILE__));
    $root = '.' if $root eq '';
}

use lib "$root/t/lib";
use Apikey::Pg;

my %o = (build => "$root/build", n => 1000000,
         out => "$root/bench/results/follow.md");

GetOptions(\%o, 'build=s', 'n=i', 'out=s')
    or die "usage: bench/follow.pl [--build DIR] [--n N] [--out FILE]\n";

my $ctl = "$o{build}/apikeyctl";
-x $ctl or die "bench: $ctl: not built (make)\n";

my $why = Apikey::Pg::unavailable();
die "bench: $why\n" if $why;

my $w = tempdir('apikey-bench-follow-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $w;

my $db = "$w/db";
my $secret = "$w/secret";
my $n = $o{n};
my @rows;

sub logmsg { printf STDERR "[bench-follow] %s\n", "@_" }

sub slurp { local (@ARGV, $/) = @_; return <> // '' }

# run CMD; returns (wall s, cpu s, peak KB) from GNU time

sub measure {
    my (@cmd) = @_;

    my $rc = system('/usr/bin/time', '-f', '%e %U %S %M', '-o', "$w/time",
                    'sh', '-c', 'exec "$@" > "$0.out" 2> "$0.err"',
                    "$w/cmd", @cmd);

    die "bench: @cmd: exit " . ($rc >> 8) . ": " . slurp("$w/cmd.err")
        if $rc != 0;

    my ($wall, $user, $sys, $kb) = split ' ', slurp("$w/time");

    return ($wall, $user + $sys, $kb);
}

# PostgreSQL's dirty pages written out first: the follower's commits
# must not wait behind the writeback of the load

sub settle {
    $_[0]->psql("CHECKPOINT");
    system('sync');
}

sub case {
    my ($name, $count, @cmd) = @_;

    logmsg("$name...");

    my ($wall, $cpu, $kb) = measure(@cmd);

    push @rows, sprintf("| %s | %d | %.2f | %.2f | %.0f | %.0f |",
                        $name, $count, $wall, $cpu,
                        $wall > 0 ? $count / $wall : 0, $kb / 1024);

    logmsg($rows[-1]);
    logmsg(slurp("$w/cmd.err") =~ s/\n+\z//r);
}

system($ctl, '-d', $db, '-s', $secret, 'init') == 0 or die "bench: init\n";

my $pg = Apikey::Pg->new();
$pg->psql(scalar `$ctl follow --print-schema`);

# the rows, as COPY reads them: hash in bytea's hex input, the rest as an
# application would have them

logmsg("$n rows into PostgreSQL with COPY...");

my $copy = "$pg->{base}/rows.copy";

open my $fh, '>', $copy or die "$copy: $!";

for my $i (1 .. $n) {
    my $h = sha256_hex("bench key $i");
    printf $fh "\\\\x%s\tk%d\tcustomer %d\tread,write\tgold\t"
               . "2030-01-01 00:00:00+00\n", $h, $i, $i % 10000;
}

close $fh;
chmod 0644, $copy;

my $t0 = time();
$pg->psql("\\copy apikey_keys (hash, id, subject, scopes, plan, expires) "
          . "FROM '$copy'");
$pg->psql("VACUUM ANALYZE apikey_keys");
my $loaded = time() - $t0;

logmsg(sprintf("loaded in %.1f s (the version trigger on each row)",
               $loaded));

my $conn = $pg->conninfo();

settle($pg);
case('first: into an empty database', $n,
     $ctl, '-d', $db, '-s', $secret, 'follow', '--once', $conn);

# a full resynchronisation: the low-water mark above the version reached

$pg->psql("UPDATE apikey_state SET pruned = nextval('apikey_version')");
settle($pg);

case('again: over the same keys', $n,
     $ctl, '-d', $db, '-s', $secret, 'follow', '--once', $conn);

my $m = $n < 100000 ? $n : 100000;
$pg->psql("UPDATE apikey_keys SET plan = 'silver' WHERE id IN "
          . "(SELECT 'k' || i FROM generate_series(1, $m) i)");
settle($pg);

case("changes: $m rows updated", $m,
     $ctl, '-d', $db, '-s', $secret, 'follow', '--once', $conn);

my $stats = `$ctl -d $db -s $secret stats`;
my ($keys) = $stats =~ /^keys:\s+(\d+)/m;
die "bench: $keys keys, not $n\n" unless defined $keys && $keys == $n;

# the machine

my $cpus = `nproc` =~ s/\s+//gr;
my ($model) = slurp('/proc/cpuinfo') =~ /^model name\s*:\s*(.*)$/m;
my $pgv = $pg->psql("SHOW server_version");

my $md = sprintf(<<'EOF', strftime('%Y-%m-%d %H:%M UTC', gmtime), $cpus,
# apikeyctl follow: synchronisation from PostgreSQL

%s, %s CPUs (%s), PostgreSQL %s on a Unix socket of the same machine,
`bench/follow.pl`.  %d rows loaded with COPY in %.1f s (the version
trigger runs on each).  Wall: the whole `apikeyctl follow --once`
(connect, read from one REPEATABLE READ snapshot with COPY, check each
row as import does, one write transaction); CPU: apikeyctl's alone
(PostgreSQL's is on top).  Peak: apikeyctl's maximum resident size.
Each case starts after a CHECKPOINT and a sync: right after the load,
the writeback of PostgreSQL's pages on the same disk held the
follower's commits back (the first case took 14 s).

| case | rows | wall s | CPU s | rows/s | peak MB |
|---|---:|---:|---:|---:|---:|
EOF
                 $model // '?', $pgv, $n, $loaded)
         . join("\n", @rows) . "\n";

make_path(dirname($o{out}));
open my $out, '>', $o{out} or die "$o{out}: $!";
print $out $md;
close $out;

print $md;
