#!/usr/bin/perl

# Tests for import's progress line: on standard error when it is a
# terminal (a pty made by script(1)), "N keys read, R keys/s" rewritten in
# place with \r, cleared before any message and before the summary; never
# when standard error is a file.  The input comes through a pipe that
# pauses, so that the import lasts long enough for a line to be shown.

use strict;
use warnings;

use Test::More;

use Compress::Zlib ();

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

plan(skip_all => 'no script(1) (bsdutils)') unless -x '/usr/bin/script';

my $prefix = $t->prefix();
my $ctl = $t->{apikeyctl};
my $db = $t->db();
my $secret = $t->secret();

$t->init_db();

# 30,000 keys, a bad one on line 25,000

my @b62 = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');
my $pool = join '', map { $b62[rand 62] } 1 .. 30100;

open(my $f, '>', "$prefix/keys.csv") or die "keys.csv: $!";
print $f "key\n";

for my $i (2 .. 30001) {
    if ($i == 25000) {
        print $f "not a key\n";
        next;
    }

    my $k = 'ak_' . substr($pool, $i, 32);
    my $crc = Compress::Zlib::crc32($k);
    my $sum = '';

    for (1 .. 6) {
        $sum = $b62[$crc % 62] . $sum;
        $crc = int($crc / 62);
    }

    print $f "$k$sum\n";
}

close $f or die "keys.csv: $!";

# the input, paused 0.4 s every 10,000 lines

write_file("$prefix/slow.pl", <<'EOF');
open my $f, '<', $ARGV[0] or die "$ARGV[0]: $!";
$| = 1;
my $n = 0;
while (<$f>) {
    print;
    select(undef, undef, undef, 0.4) if ++$n % 10000 == 0;
}
EOF

sub pty {
    my ($cmd) = @_;

    my $out = `script -qec '$cmd' /dev/null < /dev/null`;
    return ($? >> 8, $out);
}

my $import = "perl $prefix/slow.pl $prefix/keys.csv | $ctl -d $db -s $secret "
             . "import --skip-invalid -";

# standard error a terminal: the progress line

my ($rc, $out) = pty($import);
is($rc, 0, 'tty: exit code');

like($out, qr/\r\e\[Kapikeyctl: import: \d+ keys read, \d+ keys\/s/,
     'tty: a progress line');

my @lines = $out =~ /\r\e\[Kapikeyctl: import: (\d+) keys read/g;
ok(@lines >= 2, 'tty: rewritten (' . scalar(@lines) . ' times)');
is_deeply([sort { $a <=> $b } @lines], \@lines, 'tty: the count grows');

like($out, qr/\r\e\[Kapikeyctl: import: skipped line 25000: key is malformed/,
     'tty: cleared before a message, which keeps its line number');

unlike($out, qr/keys\/s(?!\r\e\[K)/,
       'tty: each progress line cleared before anything else is written');
my $result = 'imported 29999 keys: 29999 added, 0 updated, 0 unchanged, '
             . '0 removed, 1 rejected';

like($out, qr/(?:\A|\n|\e\[K)\Q$result\E\r\n/,
     'tty: the summary on a line of its own');
unlike($out, qr/^apikeyctl: import: \d+ added/m, 'tty: the summary once');
unlike($out, qr/keys read[^\r]*\z/, 'tty: no progress line left at the end');

# standard error a file (the terminal is still standard output): none

($rc, $out) = pty("$import 2> $prefix/err");
is($rc, 0, 'file: exit code');

my $err = do { local (@ARGV, $/) = "$prefix/err"; <> };

unlike($err, qr/keys read/, 'file: no progress line');
unlike($err, qr/[\r\e]/, 'file: no \r or escape');
is($err, "apikeyctl: import: skipped line 25000: key is malformed (8 to 256 "
   . "printable ASCII characters, no spaces)\n",
   'file: the message only');
like($out, qr/^imported 29999 keys: 0 added, 0 updated, 29999 unchanged, /m,
     'file: the summary on the terminal');

# nor when nothing is a terminal

($rc, undef, $err) = $t->ctl('import', '--skip-invalid', "$prefix/keys.csv");
is($rc, 0, 'no tty: exit code');
unlike($err, qr/keys read/, 'no tty: no progress line');

unlink "$prefix/keys.csv";

done_testing();
