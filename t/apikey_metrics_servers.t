#!/usr/bin/perl

# Tests apikey_metrics with many server blocks (issue 9, red team):
# locations kept pointers into an array of server rows that grew, and
# moved, as more server blocks were configured, so that with 5 server
# blocks or more the requests of most of them crashed the worker
# (t/apikey_metrics.t has three).  Here 70 server blocks, names on one
# port and on several, each get their requests counted exactly (the
# first 64 names a row each, the rest in server="(OTHER)"); a reload
# from 4 server blocks to 8 does the same.  A name longer than 255 bytes
# before 64 short ones is counted in "(OTHER)", with a warning that
# names it, and the 64 short ones get their rows.  Label values that are
# not UTF-8 (a server_name, a database path) or hold control characters
# come out as valid UTF-8, U+FFFD in their place, and the scrape parses;
# a server named "(other)" is its own series, apart from the overflow.
# A database of another secret is 503s counted as status="error", and
# no lookup.  A 405 of the metrics location names GET and HEAD.

use strict;
use warnings;

use Test::More;

use Encode qw();
use Time::HiRes qw(sleep);

use Apikey::Harness qw(http_raw scaled);

my $t = Apikey::Harness->new()->require_all();

my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';

plan(skip_all => 'python3-prometheus-client is not installed '
                 . '(apt-get install python3-prometheus-client)')
    if system("$python -c 'import prometheus_client.parser' "
              . '>/dev/null 2>&1') != 0;

my $dir = $t->prefix();

# the parser, as in t/apikey_metrics.t; the scrape is decoded as strict
# UTF-8 first (the Go parser of Prometheus rejects anything else), label
# values printed as JSON strings so that any character shows

open my $fh, '>', "$dir/parse.py" or die $!;
print $fh <<'EOF';
import json
import sys
from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.buffer.read().decode("utf-8", errors="strict")

for fam in text_string_to_metric_families(text):
    print("family\t%s\t%s" % (fam.name, fam.type))
    for s in fam.samples:
        labels = ",".join("%s=%s" % (k, json.dumps(s.labels[k])[1:-1])
                          for k in sorted(s.labels))
        v = s.value
        print("sample\t%s\t%s\t%s" % (s.name, labels,
                                      "%d" % v if v == int(v) else repr(v)))
EOF
close $fh;

$t->init_db();

my $valid = $t->gen('--id', 'valid');

sub get_host {
    my ($port, $host, $uri, @headers) = @_;

    my $req = "GET $uri HTTP/1.0\r\nHost: $host\r\n";

    while (my ($k, $v) = splice(@headers, 0, 2)) {
        $req .= "$k: $v\r\n";
    }

    return http_raw($port, "$req\r\n");
}

# scrape: the raw answer, with {ok} (parsed), {family} and {sample}

sub scrape {
    my ($t, $port) = @_;

    my $r = get_host($port, 'metrics', '/metrics');

    return $r unless $r->{status} == 200;

    open my $out, '>:raw', "$dir/scrape.txt" or die $!;
    print $out $r->{body};
    close $out;

    my (%family, %sample);

    my @lines = `$python $dir/parse.py < $dir/scrape.txt 2>&1`;
    $r->{ok} = $? == 0;
    $r->{parser} = join '', @lines;

    for (@lines) {
        chomp;
        my ($kind, $name, @rest) = split /\t/, $_, -1;
        if ($kind eq 'family') {
            $family{$name} = $rest[0];
        } elsif ($kind eq 'sample') {
            $sample{$rest[0] eq '' ? $name : "$name\{$rest[0]\}"}
                = $rest[1];
        }
    }

    $r->{family} = \%family;
    $r->{sample} = \%sample;

    return $r;
}

sub requests {
    my ($m, $server, $status) = @_;
    return $m->{sample}{"apikey_requests_total\{server=$server,"
                        . "status=$status\}"} // 'none';
}

# the servers: [name, port index]; each gets requests without a key
# (missing, apikey optional lets them through) and with a valid key

sub servers_config {
    my ($servers, %opts) = @_;

    my $conf = <<'EOF';
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;
    apikey optional;
    server_names_hash_bucket_size 512;

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name metrics;
        apikey off;

        location = /metrics {
            apikey_metrics;
        }
    }
EOF

    for my $s (@$servers) {
        my ($name, $port) = @$s;
        $conf .= <<"EOF";

    server {
        listen 127.0.0.1:%%PORT_$port%%;
        server_name "$name";

        location / {
            empty_gif;
        }
    }
EOF
    }

    return $conf;
}

# sends each server its own numbers: n missing and (n % 2 + 1) valid;
# returns the answers that were not 200

sub send_servers {
    my ($t, $servers, $round) = @_;

    my @bad;

    for my $i (0 .. $#$servers) {
        my ($name, $port) = @{$servers->[$i]};
        my ($missing, $ok) = counts($i, $round);

        for (1 .. $missing) {
            my $r = get_host($t->port($port), $name, '/');
            push @bad, "$name: $r->{status}" if $r->{status} != 200;
        }

        for (1 .. $ok) {
            my $r = get_host($t->port($port), $name, '/',
                             'X-API-Key', $valid);
            push @bad, "$name: $r->{status}" if $r->{status} != 200;
        }
    }

    return join('; ', @bad);
}

sub counts {
    my ($i, $round) = @_;
    return (($i + $round) % 3 + 1, ($i + $round) % 2 + 1);
}

# what each server (or "(OTHER)" for those past $rows) should show

sub expect {
    my ($servers, $rounds, $rows, $expect) = @_;

    $expect //= {};

    for my $round (@$rounds) {
        for my $i (0 .. $#$servers) {
            my $label = $i < $rows ? $servers->[$i][0] : '(OTHER)';
            my ($missing, $ok) = counts($i, $round);
            $expect->{$label}{missing} += $missing;
            $expect->{$label}{valid} += $ok;
        }
    }

    return $expect;
}

sub check_counts {
    my ($m, $expect, $what) = @_;

    my @bad;

    for my $server (sort keys %$expect) {
        for my $status (qw(missing valid unknown error)) {
            my $want = $expect->{$server}{$status} // 0;
            my $got = requests($m, $server, $status);
            push @bad, "$server $status: $got, sent $want"
                if $got ne $want;
        }
    }

    is(join('; ', @bad), '', "$what: requests counted as sent");
}

# the workers: the master's children

sub workers {
    my ($t) = @_;

    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        my ($pid, $ppid) = Apikey::Harness::slurp($stat)
                           =~ /^(\d+) \(.*\) \S+ (\d+)/s or next;
        push @pids, $pid if $ppid == $t->{pid};
    }

    return @pids;
}

# a reload: the old workers gone, as many new ones up

sub reload {
    my ($t, $n) = @_;

    my %old = map { $_ => 1 } workers($t);

    kill 'HUP', $t->{pid};

    for (1 .. scaled(200)) {
        my @w = workers($t);
        return 1 if @w == $n && !grep { $old{$_} } @w;
        sleep 0.05;
    }

    return 0;
}

###############################################################################

# 70 server blocks: 40 names on one port, 30 on three more; 64 rows,
# the last 6 counted in "(OTHER)"

my @big = map { [sprintf('n%02d.example', $_), $_ < 40 ? 1 : 2 + $_ % 3] }
          0 .. 69;

# the first named as the overflow row used to be

$big[0][0] = '(other)';

$t->write_config(servers_config(\@big), workers => 2);
$t->start();

is(send_servers($t, \@big, 0), '', '70 servers: every request answered 200');

my $m = scrape($t, $t->port(0));

is($m->{status}, 200, '70 servers: scraped');
ok($m->{ok}, '70 servers: the scrape parses') or diag($m->{parser});
check_counts($m, expect(\@big, [0], 64), '70 servers');

my @dup = $m->{body} =~ /^apikey_requests_total\{server="\(other\)",status="valid"\}/mg;
is(scalar @dup, 1, 'a server named "(other)": one series, apart from "(OTHER)"');

my $warn = 'counts the requests of more than 64 server names as '
           . 'server="\(OTHER\)", such as "n64\.example"';

like($t->error_log(), qr/$warn/, '70 servers: the warning names the 65th');

$t->check_log();
$t->stop();

###############################################################################

# a reload from 4 server blocks to 8, names on one port

my $r = Apikey::Harness->new()->require_all();
$r->{db} = $t->db();
$r->{secret} = $t->secret();

my @four = map { ["r$_.example", 1] } 0 .. 3;
my @eight = map { ["r$_.example", 1] } 0 .. 7;

$r->write_config(servers_config(\@four), workers => 2);
$r->start();

is(send_servers($r, \@four, 0), '', '4 servers: every request answered 200');

$r->write_config(servers_config(\@eight), workers => 2);
ok(reload($r, 2), 'reloaded to 8 servers: new workers');

is(send_servers($r, \@eight, 1), '',
   'reloaded to 8 servers: every request answered 200');

$m = scrape($r, $r->port(0));
ok($m->{ok}, 'reloaded to 8 servers: the scrape parses') or diag($m->{parser});

my $expect = expect(\@four, [0], 64);
expect(\@eight, [1], 64, $expect);
check_counts($m, $expect, '4 servers, then 8');

$r->check_log();
$r->stop();

###############################################################################

# a name longer than 255 bytes before 64 short ones

my $l = Apikey::Harness->new()->require_all();
$l->{db} = $t->db();
$l->{secret} = $t->secret();

my $long = 'l' x 300 . '.example';
my @long = ([$long, 1], map { [sprintf('s%02d.example', $_), 2] } 0 .. 63);

$l->write_config(servers_config(\@long), workers => 1);
$l->start();

is(send_servers($l, \@long, 0), '', 'a long name: every request answered 200');

$m = scrape($l, $l->port(0));
ok($m->{ok}, 'a long name: the scrape parses') or diag($m->{parser});

# the long name in "(OTHER)", each of the 64 others in its row

my ($lm, $lv) = counts(0, 0);

$expect = {};

for my $i (1 .. 64) {
    my ($missing, $ok) = counts($i, 0);
    $expect->{$long[$i][0]} = { missing => $missing, valid => $ok };
}

$expect->{'(OTHER)'} = { missing => $lm, valid => $lv };
check_counts($m, $expect, 'a long name');

my $log = $l->error_log();

$warn = 'counts the requests of a server name longer than 255 bytes as '
        . 'server="\(OTHER\)", "l{32}\.\.\."';

like($log, qr/$warn/, 'a long name: the warning names it');
unlike($log, qr/more than 64 server names/,
       'a long name: no warning of more than 64 names');

$l->check_log();
$l->stop();

###############################################################################

# label values: not UTF-8, control characters, "(other)"; a database of
# another secret

my $u = Apikey::Harness->new()->require_all();
$u->{db} = $t->db();
$u->{secret} = $t->secret();

my $bad_db = "$dir/db\xff\xfe";
$u->init_db({ db => $bad_db });

my $wrong_db = "$dir/wrong";
$u->init_db({ db => $wrong_db, secret => "$dir/wrong.secret" });

$u->write_config(<<"EOF", workers => 1);
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

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name "(other)";

        location / {
            empty_gif;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name "bad\xc3\x28name";
        apikey_db $bad_db;

        location / {
            empty_gif;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_3%%;
        server_name "tab\\there\\rcr\x7fdel\xc2\x85nel";

        location / {
            empty_gif;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_5%%;
        server_name "mix\xc0\xaf\xed\xa0\x80\xf0\x9f\x98\x80\xc3\xa9end\xe2\x82";

        location / {
            empty_gif;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_4%%;
        server_name "wrong";
        apikey_db $wrong_db;

        location / {
            empty_gif;
        }
    }
EOF

$u->start();

my %sent;

for my $port (1 .. 3) {
    for (1 .. $port + 1) {
        my $res = get_host($u->port($port), 'x', '/', 'X-API-Key', $valid);
        $sent{$port}{$res->{status}}++;
    }
}

for (1 .. 5) {
    my $res = get_host($u->port(4), 'x', '/', 'X-API-Key', $valid);
    $sent{4}{$res->{status}}++;
}

$sent{5}{get_host($u->port(5), 'x', '/', 'X-API-Key', $valid)->{status}}++;

is_deeply(\%sent, { 1 => { 200 => 2 }, 2 => { 401 => 3 }, 3 => { 200 => 4 },
                    4 => { 503 => 5 }, 5 => { 200 => 1 } },
          'odd names: answers (the key is of the first database)');

$m = scrape($u, $u->port(0));

is($m->{status}, 200, 'odd names: scraped');
ok($m->{ok}, 'odd names: valid UTF-8, and the scrape parses')
    or diag($m->{parser});

# U+FFFD for the byte that does not begin a valid sequence, for the
# control characters (tab, CR, DEL and the C1 NEL); the C3 28 pair is
# not a character, but 28 is "("

my $fffd = '\ufffd';

check_counts($m, {
    '(other)' => { valid => 2 },
    "bad${fffd}(name" => { unknown => 3 },
    "tab${fffd}here${fffd}cr${fffd}del${fffd}nel" => { valid => 4 },
    wrong => { error => 5 },

    # an overlong "/", a surrogate: each byte replaced; a character of 4
    # bytes and one of 2 kept; a sequence cut short at the end replaced

    "mix${fffd}${fffd}${fffd}${fffd}${fffd}"
    . '\ud83d\ude00\u00e9end' . "${fffd}${fffd}" => { valid => 1 },
}, 'odd names');

ok(!grep(/server=\(OTHER\)/, keys %{$m->{sample}}),
   '"(other)" is its own series, no overflow series');

is($m->{sample}{"apikey_db_usable\{db=$dir/db$fffd$fffd\}"}, 1,
   'a database path not UTF-8: U+FFFD in the label');

is($m->{sample}{"apikey_db_usable\{db=$wrong_db\}"}, 0,
   'another secret: the database not usable');
is($m->{sample}{apikey_lookups_total}, 2 + 3 + 4 + 1,
   'another secret: no lookup');
is($m->{sample}{apikey_lookup_errors_total}, 0,
   'another secret: no lookup error');

# the raw bytes: no byte of the names that is not UTF-8, no control
# character in a line

my $body = $m->{body};
ok(eval { Encode::decode('UTF-8', my $copy = $body, Encode::FB_CROAK); 1 },
   'the scrape is valid UTF-8');
unlike($body, qr/[\x00-\x09\x0b-\x1f\x7f]/, 'no control character');

# a 405 names the methods allowed

my $res = http_raw($u->port(0), "POST /metrics HTTP/1.0\r\nHost: metrics\r\n"
                                . "Content-Length: 0\r\n\r\n");
is($res->{status}, 405, 'POST: 405');
is($res->{headers}{allow}[0], 'GET, HEAD', 'POST: Allow: GET, HEAD');

$u->check_log();
$u->stop();

done_testing();
