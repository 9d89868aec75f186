#!/usr/bin/perl

# Tests for retired keys: rotate retires the old key for good, a flag
# of its record that stays when its rotation link goes (revoke of the
# new key, import --replace without it):
#
# - no import, plain or --replace, lifts a retired key's end, whatever
#   its links, and nginx keeps refusing a key whose grace is over;
# - a row that would then end before its not_before is rejected (exit 3,
#   its line named), and nothing is written;
# - "expire --at" is the operator's override, and the key stays retired;
# - show and list --format json say "retired".

use strict;
use warnings;

use Test::More;

use JSON::PP;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_all();

my $prefix = $t->prefix();

$t->init_db();

my ($rc, $out, $err);

sub import_file {
    my ($name, $data, @flags) = @_;

    my $file = "$prefix/$name.csv";
    write_file($file, $data);

    return $t->ctl('import', @flags, $file);
}

sub import_ok {
    my ($name, $data, @flags) = @_;

    my @r = import_file($name, $data, @flags);
    is($r[0], 0, "$name: exit code") or diag($r[2]);

    return @r;
}

sub field {
    my ($id, $name) = @_;

    my ($v) = $t->ctl_ok('show', $id) =~ /^\Q$name\E: (.*)$/m;
    return $v;
}

sub show_json {
    my ($id) = @_;
    return decode_json($t->ctl_ok('show', $id, '--format', 'json'));
}

sub status {
    my ($key) = @_;

    my (undef, $o) = $t->ctl({ input => "$key\n" }, 'verify', '-');
    $o =~ s/ id=.*//s;
    return $o;
}

sub hash_of {
    my ($id) = @_;

    my ($h) = $t->ctl_ok('export') =~ /^"([0-9a-f]{64})","\Q$id\E",/m;
    return $h;
}

$t->write_config(<<'EOF');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;

        location / {
            return 200 "backend\n";
        }
    }
EOF

$t->start();

# the red team: rotate with no grace, revoke the new key (which clears
# the old key's replaced_by), then import the old key without expires

my $g = $t->gen('--id', 'g');
$t->ctl_ok('rotate', 'g', '--grace', '0', '--new-id', 'g2');
my $gend = field('g', 'expires');

is(show_json('g')->{retired}, JSON::PP::true, 'rotate: g retired');
is(show_json('g2')->{retired}, JSON::PP::false, 'rotate: g2 not retired');
is(field('g', 'retired'), 'true', 'rotate: show says g is retired');
is(field('g2', 'retired'), undef, 'rotate: show of g2 has no retired line');
is($t->get('/', 'X-API-Key' => $g)->{status}, 401, 'rotate: g refused');

$t->ctl_ok('revoke', 'g2');
is(field('g', 'replaced_by'), '-', 'revoke g2: the link gone');
is(show_json('g')->{retired}, JSON::PP::true, 'revoke g2: g still retired');

($rc, $out, $err) = import_ok('revive', "key,id\n$g,g\n");
is($err, '', 'revive: nothing on stderr');
is(field('g', 'expires'), $gend, 'revive: the end kept');
is(status($g), 'expired', 'revive: g still expired');
is($t->get('/', 'X-API-Key' => $g)->{status}, 401, 'revive: nginx refuses g');
is(show_json('g')->{retired}, JSON::PP::true, 'revive: g still retired');

($rc, $out, $err) = import_ok('revive-later', "key,id,expires\n"
                              . "$g,g,2099-01-01T00:00:00Z\n");
is(field('g', 'expires'), $gend, 'a later end: the end kept');
is($t->get('/', 'X-API-Key' => $g)->{status}, 401,
   'a later end: nginx refuses g');

# other updates keep the flag

$t->ctl_ok('disable', 'g');
$t->ctl_ok('enable', 'g');
is(show_json('g')->{retired}, JSON::PP::true, 'disable, enable: retired');

# the red team: import --replace twice; the first drops the new key and
# its link, the second would lift the end

my $o = $t->gen('--id', 'o');
my $k = $t->gen('--id', 'k');
$t->ctl_ok('rotate', 'o', '--new-id', 'o2', '--grace', '1h');
my $oend = field('o', 'expires');
like($oend, qr/^\d{4}-/, 'rotate o: an end');

my $file = "key,id\n$g,g\n$o,o\n$k,k\n";

import_ok('replace-1', $file, '--replace', '--force');
is(field('o', 'replaced_by'), '-', 'replace 1: the link dropped');
is(field('o', 'expires'), $oend, 'replace 1: the end kept');

($rc, $out) = import_ok('replace-2', $file, '--replace', '--force');
is(field('o', 'expires'), $oend, 'replace 2: the end kept');
is(field('g', 'expires'), $gend, 'replace 2: g keeps its end');
is(show_json('o')->{retired}, JSON::PP::true, 'replace 2: o retired');
is($t->get('/', 'X-API-Key' => $g)->{status}, 401,
   'replace 2: nginx refuses g');
is($t->get('/', 'X-API-Key' => $o)->{status}, 200,
   'replace 2: o valid in its grace');
like($out, qr/ 0 updated, 3 unchanged, 0 removed/,
     'replace 2: nothing to write');

# list --format json says so too, for a retired key only

my %list = map { $_->{id} => $_->{retired} // 'absent' }
           map { decode_json($_) }
           split /\n/, $t->ctl_ok('list', '--format', 'json');
is_deeply(\%list, { g => JSON::PP::true, o => JSON::PP::true,
                    k => 'absent' },
          'list --format json: retired');

# export is as it was: no retired column

unlike($t->ctl_ok('export', '--format', 'jsonl'), qr/retired/,
       'export: no retired');

# the red team: the kept end is before the row's not_before

$t->ctl_ok('rotate', 'k', '--new-id', 'k2', '--grace', '1h');
my $kend = field('k', 'expires');
my $before = $t->ctl_ok('export');

($rc, $out, $err) = import_file('not-before', "hash,id,not_before,expires\n"
                                . hash_of('k') . ",k,2h,\n");
is($rc, 3, 'not_before after the kept end: exit code');
like($err, qr/line 2: key is retired: its end \Q$kend\E is kept, and not_before must be before it/,
     'not_before after the kept end: message');
is($t->ctl_ok('export'), $before, 'not_before after the kept end: unchanged');

($rc, $out, $err) = import_file('not-before-k', "key,id,subject,not_before\n"
                                . "$k,k,s,$kend\n");
is($rc, 3, 'not_before at the kept end: exit code');
like($err, qr/line 2: key is retired/, 'not_before at the kept end: message');

($rc, $out, $err) = import_file('not-before-replace',
                                "hash,id,not_before,expires\n"
                                . hash_of('k2') . ",k2,,\n"
                                . hash_of('k') . ",k,2h,\n",
                                '--replace', '--force');
is($rc, 3, '--replace, not_before after the kept end: exit code');
like($err, qr/line 3: key is retired: its end \Q$kend\E is kept/,
     '--replace, not_before after the kept end: message');
is($t->ctl_ok('export'), $before,
   '--replace, not_before after the kept end: unchanged');

($rc, $out, $err) = import_file('not-before-skip',
                                "hash,id,not_before,expires\n"
                                . hash_of('k') . ",k,2h,\n"
                                . hash_of('k2') . ",k2,,\n",
                                '--skip-invalid');
is($rc, 0, '--skip-invalid: exit code');
like($out, qr/ 1 rejected/, '--skip-invalid: 1 rejected');
like($err, qr/line 2: key is retired/, '--skip-invalid: message');
is(field('k', 'not_before'), '-', '--skip-invalid: k not written');
is(field('k2', 'replaces'), 'k', '--skip-invalid: k2 still linked');

# a not_before before the kept end is fine: the end stays

import_ok('not-before-ok', "hash,id,not_before\n" . hash_of('k') . ",k,now\n");
is(field('k', 'expires'), $kend, 'not_before before the end: end kept');

# expire --at: the operator's override, and the key stays retired

$t->ctl_ok('expire', 'g', '--at', '2099-01-01T00:00:00Z');
is(field('g', 'expires'), '2099-01-01T00:00:00Z', 'expire --at: end lifted');
is(show_json('g')->{retired}, JSON::PP::true, 'expire --at: still retired');
is($t->get('/', 'X-API-Key' => $g)->{status}, 200,
   'expire --at: nginx accepts g');

import_ok('after-expire', "key,id\n$g,g\n");
is(field('g', 'expires'), '2099-01-01T00:00:00Z',
   'import after expire --at: the new end kept');

my ($crc, $cout) = $t->ctl('check');
is($crc, 0, 'check') or diag($cout);

done_testing();
