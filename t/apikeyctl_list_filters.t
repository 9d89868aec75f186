#!/usr/bin/perl

# Tests the filters of apikeyctl list: --plan, --status, --expiring-within
# and their combinations with --subject, in the table, json and csv
# formats; an invalid status or duration is a usage error.

use strict;
use warnings;

use Test::More;

use JSON::PP;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_apikeyctl();

$t->init_db();

# id          subject  plan  status         expires
# gold10      acme     gold  valid          in 10 days
# free        acme     free  valid          never
# gold60      other    gold  valid          in 60 days
# old         acme     gold  expired        now
# dis         other    free  disabled       in 5 days
# later       acme     gold  not_yet_valid  in 20 days (from in 7 days)

$t->gen('--id', 'gold10', '--subject', 'acme', '--plan', 'gold',
        '--expires', '10d');
$t->gen('--id', 'free', '--subject', 'acme', '--plan', 'free');
$t->gen('--id', 'gold60', '--subject', 'other', '--plan', 'gold',
        '--expires', '60d');
$t->gen('--id', 'old', '--subject', 'acme', '--plan', 'gold');
$t->ctl_ok('expire', 'old', '--at', 'now');
$t->gen('--id', 'dis', '--subject', 'other', '--plan', 'free',
        '--expires', '5d');
$t->ctl_ok('disable', 'dis');
$t->gen('--id', 'later', '--subject', 'acme', '--plan', 'gold',
        '--not-before', '7d', '--expires', '20d');

my $json = JSON::PP->new();

# the ids that list prints, sorted, in each format

sub ids {
    my ($format, @opts) = @_;

    my ($rc, $out, $err) = $t->ctl('list', @opts, '--format', $format);

    return "exit $rc: $err" if $rc != 0;

    my @ids;

    if ($format eq 'table') {
        my @lines = split /\n/, $out;
        return 'no header' unless shift(@lines) =~ /^ID +SUBJECT +PLAN /;
        @ids = map { (split / +/)[0] } @lines;

    } elsif ($format eq 'json') {
        @ids = map { $json->decode($_)->{id} } split /\n/, $out;

    } else {
        my @lines = split /\n/, $out;
        return 'no header' unless shift(@lines) =~ /^id,subject,/;
        @ids = map { /^"?([^",]+)"?,/ ? $1 : '?' } @lines;
    }

    return join ',', sort @ids;
}

my @cases = (
    [ [],                                    'dis,free,gold10,gold60,later,old' ],
    [ ['--plan', 'gold'],                    'gold10,gold60,later,old' ],
    [ ['--plan', 'free'],                    'dis,free' ],
    [ ['--plan', 'none'],                    '' ],
    [ ['--status', 'valid'],                 'free,gold10,gold60' ],
    [ ['--status', 'expired'],               'old' ],
    [ ['--status', 'disabled'],              'dis' ],
    [ ['--status', 'not_yet_valid'],         'later' ],
    [ ['--expiring-within', '30d'],          'dis,gold10,later' ],
    [ ['--expiring-within', '1w'],           'dis' ],
    [ ['--expiring-within', '90d'],          'dis,gold10,gold60,later' ],
    [ ['--expiring-within', '1h'],           '' ],
    [ ['--subject', 'acme', '--plan', 'gold'], 'gold10,later,old' ],
    [ ['--subject', 'acme', '--status', 'valid'], 'free,gold10' ],
    [ ['--plan', 'gold', '--status', 'valid'], 'gold10,gold60' ],
    [ ['--plan', 'gold', '--expiring-within', '30d'], 'gold10,later' ],
    [ ['--status', 'valid', '--expiring-within', '30d'], 'gold10' ],
    [ ['--subject', 'other', '--plan', 'free', '--status', 'disabled',
       '--expiring-within', '6d'],         'dis' ],
    [ ['--subject', 'other', '--status', 'valid',
       '--expiring-within', '30d'],        '' ],
);

for my $case (@cases) {
    my ($opts, $want) = @$case;

    for my $format (qw(table json csv)) {
        is(ids($format, @$opts), $want, "list @$opts --format $format");
    }
}

# an empty result still has its header

my ($rc, $out, $err) = $t->ctl('list', '--plan', 'none');
is($rc, 0, 'no match exit code');
like($out, qr/\AID +SUBJECT +PLAN +SCOPES +STATUS +EXPIRES +HINT\n\z/,
     'no match table header only');

($rc, $out) = $t->ctl('list', '--plan', 'none', '--format', 'csv');
is($out, "id,subject,scopes,plan,expires,not_before,disabled,hint,created\n",
   'no match csv header only');

($rc, $out) = $t->ctl('list', '--plan', 'none', '--format', 'json');
is($out, '', 'no match json nothing');

# the status column agrees with the filter

($rc, $out) = $t->ctl('list', '--status', 'expired');
like($out, qr/^old +acme +gold +- +expired /m, 'table status expired');

($rc, $out) = $t->ctl('list', '--status', 'not_yet_valid', '--format',
                      'json');
is($json->decode($out)->{status}, 'not_yet_valid', 'json status filtered');

# usage errors

for my $bad ('', 'VALID', 'active', 'valid,expired', 'malformed',
             'unknown') {
    ($rc, $out, $err) = $t->ctl('list', '--status', $bad);
    is($rc, 2, "status \"$bad\" exit code");
    is($out, '', "status \"$bad\" prints nothing");
    like($err, qr/^apikeyctl: list: invalid status "\Q$bad\E" \(valid, expired, disabled or not_yet_valid\)\nusage:\n/,
         "status \"$bad\" message");
}

for my $bad ('', '30', 'd', 'now', '30x', '-1d', '1.5d',
             '2027-01-31T00:00:00Z', '2027-01-31t00:00:00z', '99999999999w') {
    ($rc, $out, $err) = $t->ctl('list', '--expiring-within', $bad);
    is($rc, 2, "duration \"$bad\" exit code");
    is($out, '', "duration \"$bad\" prints nothing");
    like($err, qr/^apikeyctl: list: invalid duration "\Q$bad\E" \(such as 30d, 12h, 15m, 90s or 2w\)\n/,
         "duration \"$bad\" message");
}

($rc, $out, $err) = $t->ctl('list', '--plan');
is($rc, 2, 'plan without value exit code');
like($err, qr/^apikeyctl: list: option "--plan" requires an argument\n/,
     'plan without value message');

# help

($rc, $out) = $t->ctl('--help');
like($out, qr/^ *apikeyctl list \[--subject S\] \[--plan P\]\n *\[--status valid\|expired\|disabled\|not_yet_valid\]\n *\[--expiring-within DURATION\]\n *\[--format table\|json\|csv\]\n/m,
     'help list');

done_testing();
