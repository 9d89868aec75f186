#!/usr/bin/perl

# Tests the server rows of apikey_metrics over reloads (issue 9, review):
# the zone keeps a row for every server name it has been given, since
# nginx started, so that counts survive a rename; 64 names fill it.  Here
# four configurations of 16 server blocks each, every one renamed, fill
# the 64 rows; a fifth configuration keeps an old name (its row and its
# counts are still there) and adds two new ones, which go to
# server="(OTHER)", with a warning at the reload that names the first
# and counts them.  No warning before the zone is full.

use strict;
use warnings;

use Test::More;

use Time::HiRes qw(sleep);

use Apikey::Harness qw(http_raw scaled);

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my $valid = $t->gen('--id', 'valid');

sub get_host {
    my ($host, $key) = @_;

    my $req = "GET / HTTP/1.0\r\nHost: $host\r\n";
    $req .= "X-API-Key: $key\r\n" if defined $key;

    return http_raw($t->port(1), "$req\r\n");
}

sub config {
    my (@names) = @_;

    my $conf = <<'EOF';
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;
    apikey on;

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name metrics;
        apikey off;

        location = /metrics {
            apikey_metrics;
        }
    }
EOF

    for my $name (@names) {
        $conf .= <<"EOF";

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name $name;

        location / {
            empty_gif;
        }
    }
EOF
    }

    return $conf;
}

# a reload: the old workers gone, a new one up

sub reload {
    my %old = map { $_ => 1 } $t->workers();

    kill 'HUP', $t->{pid};

    for (1 .. scaled(200)) {
        my @w = $t->workers();
        return 1 if @w == 1 && !grep { $old{$_} } @w;
        sleep 0.05;
    }

    return 0;
}

# sends n requests with a valid key to each name; the answers not 200

sub send_valid {
    my (%n) = @_;

    my @bad;

    for my $name (sort keys %n) {
        for (1 .. $n{$name}) {
            my $r = get_host($name, $valid);
            push @bad, "$name: $r->{status}" if $r->{status} != 200;
        }
    }

    return join('; ', @bad);
}

# the scrape: server => status => count

sub scrape {
    my $r = http_raw($t->port(0),
                     "GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n");

    my %m;

    while ($r->{body} =~ /^apikey_requests_total\{server="([^"]*)",
                          status="(\w+)"\}\ (\d+)$/mgx)
    {
        $m{$1}{$2} = $3;
    }

    return ($r->{status}, \%m);
}

my $full = qr/more than 64 server names/;

###############################################################################

# 16 names a configuration, every one new: 64 rows after the fourth

my @gens = map { my $g = $_; [map { "g$g-$_.example" } 0 .. 15] } 0 .. 3;

$t->write_config(config(@{$gens[0]}));
$t->start();

is(send_valid('g0-0.example' => 2), '', 'first configuration: 200');

for my $g (1 .. 3) {
    $t->write_config(config(@{$gens[$g]}));
    ok(reload(), "renamed, reload $g: a new worker");
    is(send_valid($gens[$g][0] => 1), '', "renamed, reload $g: 200");
}

my ($status, $m) = scrape();

is($status, 200, '64 names: scraped');
is(scalar(keys %$m), 64, '64 names: a row each, none in "(OTHER)"');
is($m->{'g0-0.example'}{valid}, 2, '64 names: the first one kept its counts');
unlike($t->error_log(), $full, '64 names: no warning');

###############################################################################

# a fifth configuration: an old name, and two the zone has no room for

$t->write_config(config('g0-0.example', 'new.example', 'new2.example'));
ok(reload(), 'zone full, reload: a new worker');

is(send_valid('g0-0.example' => 2, 'new.example' => 3, 'new2.example' => 1),
   '', 'zone full: 200');

($status, $m) = scrape();

is($status, 200, 'zone full: scraped');
is($m->{'g0-0.example'}{valid}, 4, 'zone full: an old name counts in its row');
is($m->{'(OTHER)'}{valid}, 4, 'zone full: the new names count in "(OTHER)"');
ok(!exists $m->{'new.example'} && !exists $m->{'new2.example'},
   'zone full: no row of a new name');
is(scalar(keys %$m), 65, 'zone full: 64 rows and "(OTHER)"');

my @warn = $t->error_log() =~ /^.*$full.*$/mg;

is(scalar @warn, 1, 'zone full: one warning') or diag(join "\n", @warn);

my $names = quotemeta('as server="(OTHER)", such as "new.example" '
                      . '(2 names of this configuration; the zone keeps');

like($warn[0] // '', qr/\[warn\].* $names/,
     'zone full: the warning names the first new name, and counts them');

# the same configuration again: warned again, nothing more counted

ok(reload(), 'zone full, reload again: a new worker');

@warn = $t->error_log() =~ /^.*$full.*$/mg;
is(scalar @warn, 2, 'zone full, reload again: warned again');

($status, $m) = scrape();
is($m->{'(OTHER)'}{valid}, 4, 'zone full, reload again: counts kept');

$t->check_log();
$t->stop();

done_testing();
