#!/usr/bin/perl

# Tests for what apikeyctl takes as input: import --replace of empty
# input deletes nothing, --replace of most keys needs --force; import and
# gen never hold the write transaction while they read input or print
# keys (a revoke meanwhile returns at once); text that is not UTF-8 and
# times past 9999 are refused; no core dumps.

use strict;
use warnings;

use Test::More;

use POSIX qw(mkfifo WNOHANG);
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

plan(skip_all => 'no timeout(1)') unless -x '/usr/bin/timeout';

my $prefix = $t->prefix();
my $ctl = $t->{apikeyctl};
my @db = ('-d', $t->db(), '-s', $t->secret());

$t->init_db();

my @keys = map { $t->gen('--id', "k$_") } 1 .. 4;
my $ids = "k1,k2,k3,k4";

my ($rc, $out, $err);

sub ids {
    my $list = $t->ctl_ok('list', '--format', 'csv');
    my @rows = split /\n/, $list;
    shift @rows;

    return join ',', sort map { /^"([^"]*)"/ ? $1 : () } @rows;
}

# import --replace of nothing: an error that deletes nothing

my %empty = (
    'empty file'        => ['empty.csv', ''],
    'blank lines jsonl' => ['blank.jsonl', "\n  \n\n"],
    'header only'       => ['header.csv', "key,id\n"],
    'blank csv'         => ['blank.csv', "\n\n"],
);

for my $case (sort keys %empty) {
    my ($file, $text) = @{$empty{$case}};

    write_file("$prefix/$file", $text);

    ($rc, $out, $err) = $t->ctl('import', '--replace', "$prefix/$file");
    is($rc, 3, "replace with $case exit code");
    is($err, "apikeyctl: import: $prefix/$file: no rows to import, and "
       . "--replace would delete every key; nothing was changed\n",
       "replace with $case message");
    is(ids(), $ids, "replace with $case deletes nothing");
}

($rc, $out, $err) = $t->ctl({ input => '' }, 'import', '--replace', '-');
is($rc, 3, 'replace with empty stdin exit code');
is($err, "apikeyctl: import: standard input: no rows to import, and "
   . "--replace would delete every key; nothing was changed\n",
   'replace with empty stdin message');

($rc, $out, $err) = $t->ctl({ input => '' }, 'import', '--replace', '--force',
                            '--format', 'jsonl', '-');
is($rc, 3, 'replace --force with empty stdin exit code');
is(ids(), $ids, 'replace --force with empty stdin deletes nothing');

write_file("$prefix/bad.csv", "key,expires\nshort,\nplain-key-1,never\n");

($rc, $out, $err) = $t->ctl('import', '--replace', '--skip-invalid',
                            "$prefix/bad.csv");
is($rc, 3, 'replace with only invalid rows exit code');
like($err, qr/^\Qapikeyctl: import: $prefix\/bad.csv: no valid rows to \E
              \Qimport, and --replace would delete every key; nothing was \E
              \Qchanged\E$/mx, 'replace with only invalid rows message');
is(ids(), $ids, 'replace with only invalid rows deletes nothing');

# --replace that removes more than half needs --force

write_file("$prefix/one.csv", "key,id\n$keys[0],k1\n");

($rc, $out, $err) = $t->ctl('import', '--replace', "$prefix/one.csv");
is($rc, 3, 'replace of 3 of 4 exit code');
is($err, "apikeyctl: import: --replace would remove 3 of the 4 keys, more "
   . "than half; nothing was changed (add --force to do it)\n",
   'replace of 3 of 4 message');
is(ids(), $ids, 'replace of 3 of 4 deletes nothing');

($rc, $out, $err) = $t->ctl('import', '--replace', '--dry-run',
                            "$prefix/one.csv");
is($rc, 3, 'replace of 3 of 4 dry run exit code');

($rc, $out, $err) = $t->ctl('import', '--force', "$prefix/one.csv");
is($rc, 2, '--force without --replace exit code');
like($err, qr/^apikeyctl: import: --force goes with --replace$/m,
     '--force without --replace message');

write_file("$prefix/half.csv", "key,id\n$keys[0],k1\n$keys[1],k2\n"
           . "plain-new-key-1,n1\n");

($rc, $out, $err) = $t->ctl('import', '--replace', "$prefix/half.csv");
is($rc, 0, 'replace of half exit code');
is($out, "imported 3 keys: 1 added, 0 updated, 2 unchanged, 2 removed, "
   . "0 rejected\n", 'replace of half summary');
is(ids(), 'k1,k2,n1', 'replace of half result');

($rc, $out, $err) = $t->ctl('import', '--replace', '--force',
                            "$prefix/one.csv");
is($rc, 0, 'replace --force exit code');
is(ids(), 'k1', 'replace --force result');

# import reads all its input before the write transaction: a revoke
# while the input is still coming returns at once

$t->gen('--id', 'victim');

my $fifo = "$prefix/in.fifo";
mkfifo($fifo, 0600) or die "mkfifo: $!";

my $import = spawn("$prefix/import", $ctl, @db, 'import', $fifo);

open my $w, '>', $fifo or die "$fifo: $!";
$w->autoflush(1);
print $w "key,id\nplain-fifo-key-1,fifo1\n";

sleep 0.5;

ok(!exited($import), 'import waits for the rest of its input');

SKIP: {
    skip 'no /proc', 1 unless -r "/proc/$import->{pid}/limits";

    like(Apikey::Harness::slurp("/proc/$import->{pid}/limits"),
         qr/^Max core file size +0 +0 /m, 'no core dumps');
}

my $start = time();
($rc, $out, $err) = run_timeout(5, $ctl, @db, 'revoke', 'victim');
my $took = time() - $start;

is($rc, 0, 'revoke during an import exit code');
is($out, "revoked \"victim\"\n", 'revoke during an import output');
cmp_ok($took, '<', 3, 'revoke during an import returns at once');

print $w "plain-fifo-key-2,fifo2\n";
close $w;

is(finish($import), 0, 'import from a fifo exit code');
is(Apikey::Harness::slurp("$prefix/import.out"),
   "imported 2 keys: 2 added, 0 updated, 0 unchanged, 0 removed, "
   . "0 rejected\n", 'import from a fifo summary');
is(ids(), 'fifo1,fifo2,k1', 'import from a fifo result');

# gen prints after the commit: a reader that does not read does not hold
# up a revoke, and the keys it was sent exist

$t->gen('--id', 'victim2');

pipe(my $r, my $wr) or die "pipe: $!";

my $gen = spawn("$prefix/gen", $ctl, @db, 'gen', '--count', '20000',
                { stdout => $wr });
close $wr;

sleep 1;

$start = time();
($rc, $out, $err) = run_timeout(5, $ctl, @db, 'revoke', 'victim2');
$took = time() - $start;

is($rc, 0, 'revoke while gen prints exit code');
cmp_ok($took, '<', 3, 'revoke while gen prints returns at once');

my $printed = do { local $/; <$r> };
close $r;

is(finish($gen), 0, 'gen to a slow reader exit code');
my @printed = $printed =~ /^(ak_\w+)$/mg;
is(scalar @printed, 20000, 'gen to a slow reader prints every key');

($rc, $out, $err) = $t->ctl({ input => "$printed[-1]\n" }, 'verify', '-');
is($rc, 0, 'the last key printed is valid');

# text that is not UTF-8, times past 9999

($rc, $out, $err) = $t->ctl('gen', '--subject', "caf\xe9");
is($rc, 2, 'gen latin-1 subject exit code');
like($err, qr/^\Qapikeyctl: gen: invalid subject "caf\xe9" (at most 256 \E
              \Qbytes of UTF-8, no control characters)\E$/mx,
     'gen latin-1 subject message');

($rc, $out, $err) = $t->ctl('gen', '--subject', "\xed\xa0\x80");
is($rc, 2, 'gen surrogate subject exit code');

($rc, $out, $err) = $t->ctl('gen', '--subject', "caf\xc3\xa9 \xe2\x82\xac");
is($rc, 0, 'gen utf-8 subject exit code');

write_file("$prefix/latin1.csv", "key,subject\nplain-latin-1,caf\xe9\n");

($rc, $out, $err) = $t->ctl('import', "$prefix/latin1.csv");
is($rc, 3, 'import latin-1 subject exit code');
like($err, qr/^apikeyctl: import: line 2: invalid subject /m,
     'import latin-1 subject message');

for my $when ('3000000d', '99999999999w', '10000-01-01T00:00:00Z',
              '9999-12-31T23:59:59-01:00')
{
    ($rc, $out, $err) = $t->ctl('gen', '--expires', $when);
    is($rc, 2, "gen --expires $when exit code");
    like($err, qr/^\Qapikeyctl: gen: invalid expires "$when" (\E/m,
         "gen --expires $when message");

    write_file("$prefix/far.csv", "key,expires\nplain-far-1,$when\n");

    ($rc, $out, $err) = $t->ctl('import', "$prefix/far.csv");
    is($rc, 3, "import expires $when exit code");
    like($err, qr/^\Qapikeyctl: import: line 2: invalid expires "$when"\E/m,
         "import expires $when message");

    ($rc, $out, $err) = $t->ctl('expire', 'k1', '--at', $when);
    is($rc, 2, "expire --at $when exit code");
}

($rc, $out, $err) = $t->ctl('gen', '--expires', '9999-12-31T23:59:59Z',
                            '--format', 'json');
is($rc, 0, 'gen --expires 9999-12-31T23:59:59Z exit code');
like($out, qr/"expires":"9999-12-31T23:59:59Z"/, 'expires 9999 shown');

# an empty time on gen's command line is an unset variable, not "never"

for my $opt ('--expires', '--not-before') {
    ($rc, $out, $err) = $t->ctl('gen', '--id', 'empty-time', $opt, '');
    is($rc, 2, "gen $opt '' exit code");
    like($err, qr/^\Qapikeyctl: gen: $opt is empty: give an RFC 3339 time, \E
                  \Qa duration (30d) or now, or leave the option out\E$/mx,
         "gen $opt '' message");
    is($out, '', "gen $opt '' printed no key");
}

# one JSONL scopes element is one scope: "read,admin" does not grant admin

for my $el ('"b,c"', '""', '",admin"') {
    write_file("$prefix/sc.jsonl", '{"key":"scopes-key-0001","id":"sc1",'
               . qq("scopes":["a",$el]}\n));
    ($rc, $out, $err) = $t->ctl('import', '--format', 'jsonl',
                                "$prefix/sc.jsonl");
    is($rc, 3, "jsonl scopes element $el exit code");
    is($err, "apikeyctl: import: line 1: scopes[1] is not one scope (empty, "
       . "or with a comma)\n", "jsonl scopes element $el message");
}

# fifo1, fifo2, k1, 20,000 from gen, the UTF-8 subject, 9999

is(ids() =~ tr/,//, 20004, 'nothing else was stored');

done_testing();

###############################################################################

# a background apikeyctl: stdout and stderr in files, unless a handle

sub spawn {
    my ($base, @cmd) = @_;

    my $opts = ref $cmd[-1] eq 'HASH' ? pop @cmd : {};

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';

        if ($opts->{stdout}) {
            open STDOUT, '>&', $opts->{stdout} or die;
        } else {
            open STDOUT, '>', "$base.out" or die;
        }

        open STDERR, '>', "$base.err" or die;
        exec @cmd or die "exec: $!";
    }

    return { pid => $pid };
}

sub exited {
    my ($p) = @_;

    return 1 if exists $p->{rc};
    return 0 if waitpid($p->{pid}, WNOHANG) == 0;

    $p->{rc} = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return 1;
}

sub finish {
    my ($p) = @_;

    for (1 .. 100) {
        return $p->{rc} if exited($p);
        sleep 0.1;
    }

    kill 'KILL', $p->{pid};
    waitpid($p->{pid}, 0);

    return 'killed after 10 s';
}

# a command that must not hang the suite: killed after $secs

sub run_timeout {
    my ($secs, @cmd) = @_;

    my $p = spawn("$prefix/timeout", '/usr/bin/timeout', '-s', 'KILL',
                  $secs, @cmd);

    waitpid($p->{pid}, 0);
    my $code = $? & 127 ? 128 + ($? & 127) : $? >> 8;

    return ($code, Apikey::Harness::slurp("$prefix/timeout.out"),
            Apikey::Harness::slurp("$prefix/timeout.err"));
}
