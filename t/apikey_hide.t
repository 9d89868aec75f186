#!/usr/bin/perl

# Tests for apikey_hide_credentials: a real upstream (a small Perl server
# that answers with the raw request it received) gets no trace of the key
# from any source (header, Authorization, query argument, cookie), for
# every outcome that reaches it (valid, apikey optional with an invalid,
# missing or malformed key, satisfy any), with the three forms of
# proxy_pass (no URI, $request_uri, a URI with $args), over HTTP/1.1 and
# HTTP/2.  Everything else must arrive byte for byte: each request is
# compared with the same request sent without the key to a server where
# apikey is off.  $request in the access log keeps what the client sent.

use strict;
use warnings;

use Test::More;


use lib 't/lib';
use Apikey::Harness qw(http_raw);

my $t = Apikey::Harness->new()->require_all()->require_modules('http_v2');

my $curl = `curl -V 2>/dev/null` =~ /^Features:.*\bHTTP2\b/m ? 'curl' : undef;

$t->init_db();

my $k1 = $t->gen('--id', 'alice');
my $k2 = $t->gen('--id', 'bob');
my $unknown = $t->gen('--id', 'gone');
$t->ctl_ok('revoke', 'gone');

# the upstream: one request per connection, answered with its raw bytes

$t->echo_upstream(2);

# /MODE-FORM/: MODE on, optional, any (satisfy any with allow), basic
# (the default sources); FORM n (proxy_pass without a URI), r
# ($request_uri), x (a URI with $args)

my %form = (
    n => 'proxy_pass http://127.0.0.1:%%PORT_2%%;',
    r => 'proxy_pass http://127.0.0.1:%%PORT_2%%$request_uri;',
    x => 'proxy_pass http://127.0.0.1:%%PORT_2%%/x?$args;',
);

my $all = 'apikey_source header=X-API-Key query=api_key cookie=apikey '
          . 'authorization=Bearer;';

my %modes = (
    on       => "apikey on; $all",
    optional => "apikey optional; $all",
    any      => "satisfy any; allow 127.0.0.1; deny all; apikey on; $all",
    basic    => 'apikey on;',
);

my ($hide, $plain) = ('', '');

for my $m (sort keys %modes) {
    for my $f (sort keys %form) {
        $hide .= <<"EOF";
        location /$m-$f/ {
            $modes{$m}
            apikey_hide_credentials on;
            add_header X-Apikey "\$apikey_status|\$apikey_source|\$apikey_id"
                       always;
            $form{$f}
        }
EOF
        $plain .= <<"EOF";
        location /$m-$f/ {
            $form{$f}
        }
EOF
    }
}

$t->write_config(<<"EOF", access_log => 1);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    log_format t '\$request|\$args|\$request_uri|\$apikey_status';

    # the same upstream request line on every nginx (1.29 defaults to 1.1)

    proxy_http_version 1.0;

    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT_1%% http2;
        access_log %%PREFIX%%/logs/access.log t;
$hide
    }

    # the same locations without apikey: what the upstream gets when the
    # client sends no key at all

    server {
        listen 127.0.0.1:%%PORT_3%%;
        listen 127.0.0.1:%%PORT_4%% http2;
$plain
    }
EOF

$t->start();

# HTTP/1.1 and HTTP/2 requests (as in apikey_sources.t)

sub h1 {
    my ($port, $uri, @headers) = @_;

    my $req = "GET $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";

    while (my ($k, $v) = splice(@headers, 0, 2)) {
        $req .= "$k: $v\r\n";
    }

    return http_raw($port, "$req\r\n");
}

sub h2 {
    my ($port, $uri, @headers) = @_;

    my @cmd = ($curl, '-s', '-i', '--http2-prior-knowledge', '--max-time',
               '10', '--path-as-is', '--request-target', $uri);

    while (my ($k, $v) = splice(@headers, 0, 2)) {
        push @cmd, '-H', $v eq '' ? "$k;" : "$k: $v";
    }

    push @cmd, "http://127.0.0.1:$port/";

    my $pid = open(my $out, '-|') // die "fork: $!";

    if ($pid == 0) {
        open STDERR, '>', '/dev/null';
        exec @cmd or die "exec curl: $!";
    }

    local $/;
    my $raw = <$out> // '';
    close $out;

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my %r = (raw => $raw, body => $body // '', headers => {});

    my @lines = split /\r\n/, $head // '';
    ($r{status}) = (shift @lines // '') =~ m{^HTTP/2 (\d+)};
    $r{status} //= 0;

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        push @{$r{headers}{lc $k}}, $v;
    }

    return \%r;
}

my @protos = (['HTTP/1.1', \&h1, 0, 3], ['HTTP/2', \&h2, 1, 4]);

sub pct {
    my ($s) = @_;
    return join '', map { sprintf '%%%02X', ord } split //, $s;
}

# one case: the request with the key to the hide server, the request
# without it to the plain one; the upstream must see the same bytes

my $K = qr/\Q$k1\E|\Q$k2\E|\Q$unknown\E|\Q${\ pct($k1)}\E/;

sub check {
    my ($desc, $loc, $outcome, $with, $without) = @_;

    my ($q, @h) = @$with;
    my ($pq, @ph) = @$without;

    for my $p (@protos) {
        my ($proto, $get, $hp, $pp) = @$p;

        for my $f (sort keys %form) {
            my $d = "$desc ($loc-$f, $proto)";

            SKIP: {
                skip "curl without HTTP/2 support", 4
                    if $proto eq 'HTTP/2' && !$curl;

                my $r = $get->($t->port($hp), "/$loc-$f/$q", @h);
                my $c = $get->($t->port($pp), "/$loc-$f/$pq", @ph);

                is($r->{status}, 200, "$d: status");
                is(join(',', @{$r->{headers}{'x-apikey'} // []}), $outcome,
                   "$d: outcome");
                unlike($r->{body}, $K, "$d: no key upstream");
                is($r->{body}, $c->{body}, "$d: the rest byte for byte")
                    or diag("hide:\n$r->{body}\nplain:\n$c->{body}");
            }
        }
    }
}

my $V = 'valid|header=X-API-Key|alice';

my @other = ('X-Other' => 'one', 'X-Api-Keys' => 'kept',
             Accept => 'text/plain');

# valid keys, from each source, with the rest around them

check('header', 'on', $V,
      ['?a=1', @other, 'X-API-Key' => $k1], ['?a=1', @other]);
check('empty other header kept', 'on', $V,
      ['', 'X-Empty' => '', 'X-API-Key' => $k1, 'X-Last' => 'z'],
      ['', 'X-Empty' => '', 'X-Last' => 'z']);
check('bearer', 'on', 'valid|authorization=Bearer|alice',
      ['?a=1', @other, Authorization => "Bearer $k1"], ['?a=1', @other]);
check('query in the middle', 'on', 'valid|query=api_key|alice',
      ["?a=1&api_key=$k1&b=%2B+x&c&&d=", @other],
      ['?a=1&b=%2B+x&c&&d=', @other]);
check('query first', 'on', 'valid|query=api_key|alice',
      ["?api_key=$k1&z=%7E&a=1", @other], ['?z=%7E&a=1', @other]);
check('query last', 'on', 'valid|query=api_key|alice',
      ["?z=2&a=1&api_key=$k1", @other], ['?z=2&a=1', @other]);
check('query only', 'on', 'valid|query=api_key|alice',
      ["?api_key=$k1", @other], ['', @other]);
check('query encoded', 'on', 'valid|query=api_key|alice',
      ['?API_KEY=' . pct($k1) . '&api_keyx=1', @other],
      ['?api_keyx=1', @other]);
check('cookie in the middle', 'on', 'valid|cookie=apikey|alice',
      ['?a=1', Cookie => "c=1; apikey=$k1; d=\"q w\";e=5"],
      ['?a=1', Cookie => 'c=1; d="q w";e=5']);
check('cookie first', 'on', 'valid|cookie=apikey|alice',
      ['', Cookie => "apikey=\"$k1\"; APIKEY=x; apikeys=y"],
      ['', Cookie => 'APIKEY=x; apikeys=y']);
check('cookie last', 'on', 'valid|cookie=apikey|alice',
      ['', Cookie => "c=1;apikey=$k1"], ['', Cookie => 'c=1']);
check('cookie only', 'on', 'valid|cookie=apikey|alice',
      ['', @other, Cookie => "apikey=$k1"], ['', @other]);
check('every source at once', 'on', $V,
      ["?b=1&api_key=$k1", 'X-API-Key' => $k1, @other,
       Authorization => "Bearer $k1", Cookie => "apikey=$k1; s=1"],
      ['?b=1', @other, Cookie => 's=1']);

# Basic is not a configured scheme: it goes upstream

check('basic is left alone', 'basic', $V,
      ['?api_key=x', 'X-API-Key' => $k1,
       Authorization => 'Basic YWxpY2U6c2VjcmV0'],
      ['?api_key=x', Authorization => 'Basic YWxpY2U6c2VjcmV0']);

# apikey optional: whatever the key, it does not go upstream

check('optional, unknown in a cookie', 'optional', 'unknown|cookie=apikey|',
      ['?a=1', Cookie => "x=1; apikey=$unknown"], ['?a=1', Cookie => 'x=1']);
check('optional, unknown in the query', 'optional', 'unknown|query=api_key|',
      ["?api_key=$unknown&a=1"], ['?a=1']);
check('optional, conflicting keys', 'optional',
      'malformed|header=X-API-Key|',
      ["?a=1&api_key=$k2", 'X-API-Key' => $k1, Cookie => "apikey=$unknown"],
      ['?a=1']);
check('optional, duplicate query', 'optional', 'malformed|query=api_key|',
      ["?api_key=$k1&x=1&API_KEY=$k2&api_key"], ['?x=1']);
check('optional, invalid escape', 'optional', 'malformed|query=api_key|',
      ['?api_key=%zz&x=1'], ['?x=1']);
check('optional, missing', 'optional', 'missing||',
      ['?a=1&b=2', @other, Cookie => 'c=1'],
      ['?a=1&b=2', @other, Cookie => 'c=1']);
check('optional, valid', 'optional', 'valid|query=api_key|alice',
      ["?api_key=$k1&a=1"], ['?a=1']);

# satisfy any: allow lets an unknown key through, still hidden

check('satisfy any, unknown', 'any', 'unknown|query=api_key|',
      ["?a=1&api_key=$unknown", Authorization => "Bearer $unknown"],
      ['?a=1']);

# two Cookie headers (HTTP/1.1: HTTP/2 has one, joined by nginx): the one
# left with no cookie goes, the other stays

for my $f (sort keys %form) {
    my $r = h1($t->port(0), "/on-$f/",
               Cookie => "apikey=$k1", 'X-Mid' => 'm', Cookie => 'c=1; d=2');
    my $c = h1($t->port(3), "/on-$f/", 'X-Mid' => 'm', Cookie => 'c=1; d=2');

    is($r->{status}, 200, "two cookie headers (on-$f): status");
    is($r->{body}, $c->{body}, "two cookie headers (on-$f): byte for byte");
}

# exact bytes for one request, beyond the comparison

my $r = h1($t->port(0), "/on-n/?a=1&api_key=$k1&b=2",
           Cookie => "c=1; apikey=$k1; d=2", 'X-API-Key' => $k1);

# (nginx 1.29 no longer sends "Connection: close" with HTTP/1.0)

is($r->{body} =~ s/^Connection: close\r\n//mr,
   "GET /on-n/?a=1&b=2 HTTP/1.0\r\n"
   . "Host: 127.0.0.1:" . $t->port(2) . "\r\n"
   . "Cookie: c=1; d=2\r\n\r\n", 'the exact request upstream');

$r = h1($t->port(0), "/on-x/?a=1&api_key=$k1&b=2");
like($r->{body}, qr{^GET /x\?a=1&b=2 HTTP/1.0\r\n}, 'the exact $args');

$r = h1($t->port(0), "/on-r/?api_key=$k1");
like($r->{body}, qr{^GET /on-r/ HTTP/1.0\r\n}, 'no "?" left alone');

# the request line of the access log is what the client sent

$t->stop();

my $log = $t->access_log();

like($log, qr{^GET /on-n/\?a=1&api_key=\Q$k1\E&b=2 HTTP/1.1\|a=1&b=2\|/on-n/\?a=1&b=2\|valid$}m,
     'access log: $request as sent, $args and $request_uri without the key');

$t->check_log();


done_testing();
