#!/usr/bin/perl

# Tests the ids of revoke, disable, enable and expire read from standard
# input with "-": one a line, blank lines ignored, all in one
# transaction; an unknown id fails the whole command and changes nothing
# unless --ignore-missing, which reports it and applies the others; a
# line that holds a key is refused and not shown; an id given twice is
# applied once; an update that changes nothing writes nothing.

use strict;
use warnings;

use Test::More;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_apikeyctl();

$t->init_db();

my %key;
$key{$_} = $t->gen('--id', $_) for qw(a b c d e);

my ($rc, $out, $err, $before);

sub status {
    my ($id) = @_;
    my (undef, $out) = $t->ctl({ input => "$key{$id}\n" }, "verify", "-");
    chomp $out;
    $out =~ s/ id=.*//;
    return $out;
}

# disable from standard input: blank lines, CR LF and spaces

($rc, $out, $err) = $t->ctl({ input => "a\n\n  \r\nb\r\n  c \n" },
                            'disable', '-');
is($rc, 0, 'disable - exit code');
is($out, qq{disabled "a"\ndisabled "b"\ndisabled "c"\n}, 'disable - output');
is($err, '', 'disable - stderr');
is(join(',', map { status($_) } qw(a b c d)),
   'disabled,disabled,disabled,valid', 'disable - applied');

# enable, no final newline

($rc, $out) = $t->ctl({ input => "a\nb" }, 'enable', '-');
is($rc, 0, 'enable - exit code');
is($out, qq{enabled "a"\nenabled "b"\n}, 'enable - output');
is(join(',', map { status($_) } qw(a b c)), 'valid,valid,disabled',
   'enable - applied');

# an unknown id: exit 3, nothing changed

$before = $t->ctl_ok('export');

for my $cmd (['revoke'], ['disable'], ['enable'], ['expire', '--at', 'now']) {
    my $name = $cmd->[0];

    ($rc, $out, $err) = $t->ctl({ input => "a\nnope\nb\n" }, @$cmd, '-');
    is($rc, 3, "$name - unknown exit code");
    is($out, '', "$name - unknown prints nothing");
    is($err, qq{apikeyctl: $name: no key with id "nope"\n},
       "$name - unknown message");
    is($t->ctl_ok('export'), $before, "$name - unknown changes nothing");
}

# --ignore-missing: unknown ids reported, the others applied

($rc, $out, $err) = $t->ctl({ input => "nope\nd\nnone\n" }, 'disable',
                            '--ignore-missing', '-');
is($rc, 0, 'disable --ignore-missing exit code');
is($out, qq{disabled "d"\n}, 'disable --ignore-missing output');
is($err, qq{apikeyctl: disable: no key with id "nope", ignored\n}
         . qq{apikeyctl: disable: no key with id "none", ignored\n},
   'disable --ignore-missing reports unknown ids');
is(status('d'), 'disabled', 'disable --ignore-missing applied');

($rc, $out, $err) = $t->ctl({ input => "d\nnope\n" }, 'enable', '-',
                            '--ignore-missing');
is($rc, 0, 'enable --ignore-missing exit code');
is($out, qq{enabled "d"\n}, 'enable --ignore-missing output');
is($err, qq{apikeyctl: enable: no key with id "nope", ignored\n},
   'enable --ignore-missing stderr');
is(status('d'), 'valid', 'enable --ignore-missing applied');

($rc, $out, $err) = $t->ctl({ input => "nope\ne\n" }, 'expire',
                            '--ignore-missing', '--at', 'now', '-');
is($rc, 0, 'expire --ignore-missing exit code');
like($out, qr/\Aexpires "e" at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n\z/,
     'expire --ignore-missing output');
is($err, qq{apikeyctl: expire: no key with id "nope", ignored\n},
   'expire --ignore-missing stderr');
is(status('e'), 'expired', 'expire --ignore-missing applied');

($rc, $out, $err) = $t->ctl({ input => "c\nnope\n" }, 'revoke',
                            '--ignore-missing', '-');
is($rc, 0, 'revoke --ignore-missing exit code');
is($out, qq{revoked "c"\n}, 'revoke --ignore-missing output');
is($err, qq{apikeyctl: revoke: no key with id "nope", ignored\n},
   'revoke --ignore-missing stderr');
is(status('c'), 'unknown', 'revoke --ignore-missing applied');

# --ignore-missing with ids as arguments too

($rc, $out, $err) = $t->ctl('disable', '--ignore-missing', 'nope', 'a');
is($rc, 0, 'disable ids --ignore-missing exit code');
is($out, qq{disabled "a"\n}, 'disable ids --ignore-missing output');
is($err, qq{apikeyctl: disable: no key with id "nope", ignored\n},
   'disable ids --ignore-missing stderr');

($rc, $out, $err) = $t->ctl('enable', 'nope', 'a');
is($rc, 3, 'enable ids unknown exit code');
is(status('a'), 'disabled', 'enable ids unknown changes nothing');

# expire and revoke from standard input

($rc, $out) = $t->ctl({ input => "a\nb\n" }, 'expire', '-', '--at', 'now');
is($rc, 0, 'expire - exit code');
like($out, qr/\Aexpires "a" at \S+\nexpires "b" at \S+\n\z/,
     'expire - output');
is(status('b'), 'expired', 'expire - applied');

($rc, $out) = $t->ctl({ input => "a\nb\n" }, 'revoke', '-');
is($rc, 0, 'revoke - exit code');
is($out, qq{revoked "a"\nrevoked "b"\n}, 'revoke - output');
is(join(',', map { status($_) } qw(a b d)), 'unknown,unknown,valid',
   'revoke - applied');

# a key among the ids: refused, not shown, nothing changed

$before = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl({ input => "d\n$key{d}\n" }, 'revoke', '-');
is($rc, 3, 'key on standard input exit code');
is($out, '', 'key on standard input prints nothing');
is($err, 'apikeyctl: revoke: line 2 of standard input holds an API key '
   . '(not shown); "apikeyctl verify -" reads a key from standard input '
   . "and prints its id\n", 'key on standard input message');
is(index($err, $key{d}), -1, 'key on standard input not shown');
is($t->ctl_ok('export'), $before, 'key on standard input changes nothing');

($rc, $out, $err) = $t->ctl({ input => "d\n  $key{d} \n" }, 'disable',
                            '--ignore-missing', '-');
is($rc, 3, 'key on standard input --ignore-missing exit code');
is(index($err, $key{d}), -1, 'key on standard input --ignore-missing hidden');
is(status('d'), 'valid', 'key on standard input --ignore-missing no change');

# empty input, "-" with other ids

for my $in ('', "\n\n  \n") {
    ($rc, $out, $err) = $t->ctl({ input => $in }, 'disable', '-');
    is($rc, 3, 'no ids exit code');
    is($err, "apikeyctl: disable: no id on standard input\n",
       'no ids message');
}

($rc, $out, $err) = $t->ctl({ input => "d\n" }, 'disable', 'd', '-');
is($rc, 2, '"-" among ids exit code');
like($err, qr/^apikeyctl: disable: "-" \(standard input\) must be the only ID\n/,
     '"-" among ids message');
is(status('d'), 'valid', '"-" among ids changes nothing');

($rc, $out, $err) = $t->ctl('revoke');
is($rc, 2, 'no ids at all exit code');

($rc, $out, $err) = $t->ctl({ input => "d\x00x\n" }, 'revoke', '-');
is($rc, 3, 'nul byte exit code');
is($err, "apikeyctl: revoke: line 1 of standard input is not an id (a NUL "
   . "byte)\n", 'nul byte message');

# many ids at once, one transaction

my $csv = "id,key\n" . join('', map { "m$_,many-key-$_-0123456789\n" } 1 .. 50);
$t->ctl_ok({ input => $csv }, 'import', '-');

($rc, $out) = $t->ctl({ input => join('', map { "m$_\n" } 1 .. 50) },
                      'revoke', '-');
is($rc, 0, 'revoke 50 ids exit code');
is(scalar(() = $out =~ /^revoked /mg), 50, 'revoke 50 ids output');
is($t->ctl_ok('export') =~ /"m\d+"/ ? 1 : 0, 0, 'revoke 50 ids applied');

# an id given more than once: applied once, noted, not an error

sub generation {
    my ($g) = $t->ctl_ok('stats') =~ /^generation: +(\d+)$/m;
    return $g;
}

$t->gen('--id', $_) for qw(x1 x2);

for my $cmd (['disable'], ['enable'], ['expire', '--at', '30d'],
             ['revoke'])
{
    my $name = $cmd->[0];
    my ($g, $done) = (generation(), $name =~ /^(?:expire)$/ ? 'expires'
                                               : "${name}d");

    ($rc, $out, $err) = $t->ctl(@$cmd, 'x1', 'x2', 'x1', 'x1');
    is($rc, 0, "$name x1 x2 x1 x1: exit code");
    like($out, qr/\A$done "x1"[^\n]*\n$done "x2"[^\n]*\n\z/,
         "$name x1 x2 x1 x1: each once");
    is($err, qq{apikeyctl: $name: id "x1" given more than once, applied }
             . "once\n", "$name x1 x2 x1 x1: noted once");
    is(generation(), $g + 1, "$name x1 x2 x1 x1: one write");
}

$t->ctl('revoke', '--ignore-missing', 'x1');
$key{x1} = $t->gen('--id', 'x1');

($rc, $out, $err) = $t->ctl({ input => "x1\nx1\n" }, 'revoke', '-');
is($rc, 0, 'revoke - x1 x1: exit code');
is($out, qq{revoked "x1"\n}, 'revoke - x1 x1: revoked once');
is($err, qq{apikeyctl: revoke: id "x1" given more than once, applied once\n},
   'revoke - x1 x1: noted');
is(status('x1'), 'unknown', 'revoke - x1 x1: applied');

$t->ctl('revoke', '--ignore-missing', 'x1');
$key{x1} = $t->gen('--id', 'x1');

($rc, $out, $err) = $t->ctl('revoke', '--ignore-missing', 'x1', 'nope',
                            'x1', 'nope');
is($rc, 0, 'revoke --ignore-missing x1 nope x1 nope: exit code');
is($out, qq{revoked "x1"\n}, 'revoke --ignore-missing x1 x1: revoked');
is($err, qq{apikeyctl: revoke: no key with id "nope", ignored\n}
         . qq{apikeyctl: revoke: id "x1" given more than once, applied once\n}
         . qq{apikeyctl: revoke: id "nope" given more than once, applied }
         . "once\n", 'revoke --ignore-missing x1 x1: no false "ignored"');

($rc, $out, $err) = $t->ctl('revoke', 'nope', 'nope');
is($rc, 3, 'revoke nope nope: exit code');
is($err, qq{apikeyctl: revoke: no key with id "nope"\n},
   'revoke nope nope: message');

# an update that changes nothing writes nothing

$key{y1} = $t->gen('--id', 'y1');

my $g = generation();

($rc, $out, $err) = $t->ctl('revoke', '--ignore-missing', 'nope', 'none');
is($rc, 0, 'revoke --ignore-missing of absent ids: exit code');
is($out, '', 'revoke --ignore-missing of absent ids: nothing revoked');
is(generation(), $g, 'revoke --ignore-missing of absent ids: no write');

($rc, $out) = $t->ctl('enable', 'y1');
is($rc, 0, 'enable of an enabled key: exit code');
is($out, qq{enabled "y1"\n}, 'enable of an enabled key: output');
is(generation(), $g, 'enable of an enabled key: no write');

$t->ctl_ok('disable', 'y1');
is(generation(), $g + 1, 'disable: one write');

($rc, $out) = $t->ctl('disable', 'y1', 'y1');
is($rc, 0, 'disable of a disabled key: exit code');
is($out, qq{disabled "y1"\n}, 'disable of a disabled key: output');
is(generation(), $g + 1, 'disable of a disabled key: no write');

$t->ctl_ok('expire', '--at', '2030-01-01T00:00:00Z', 'y1');
$t->ctl_ok('expire', '--at', '2030-01-01T00:00:00Z', 'y1');
is(generation(), $g + 2, 'expire at the same time again: no write');

($rc, $out, $err) = $t->ctl({ input => "y1\n" }, 'disable',
                            '--ignore-missing', '-');
is($rc, 0, 'disable - of a disabled key: exit code');
is(generation(), $g + 2, 'disable - of a disabled key: no write');
is(status('y1'), 'disabled', 'disable of a disabled key: still disabled');

# help

($rc, $out) = $t->ctl('--help');
like($out, qr/^ *apikeyctl revoke \[--ignore-missing\] ID\.\.\.\|-$/m,
     'help revoke');
like($out, qr/^ *apikeyctl expire \[--ignore-missing\] ID\.\.\.\|- --at WHEN$/m,
     'help expire');

done_testing();
