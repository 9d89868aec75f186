#!/usr/bin/perl

# Tests for apikey_source: each kind of source (header=, authorization=,
# query=, cookie=) alone and together, precedence in configured order,
# $apikey_source, duplicates, conflicting and equal values, percent
# decoding of query keys, and hostile keys in the query string and
# cookies: each a 401 (or nginx's own 400), never a crash, never a key in
# the error log.  Every case runs over HTTP/1.1 and over HTTP/2 (cleartext
# with prior knowledge, through curl).

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use Apikey::Harness qw(http_raw);

my $t = Apikey::Harness->new()->require_all()->require_modules('http_v2');

# HTTP/2 goes through curl: without one that speaks it, those cases skip

my $curl = `curl -V 2>/dev/null` =~ /^Features:.*\bHTTP2\b/m ? 'curl' : undef;

$t->init_db();

my $k1 = $t->gen('--id', 'alice');
my $k2 = $t->gen('--id', 'bob');
my $plus = 'plus+key+0001';
$t->ctl_ok({ input => "key,id\n$plus,plus\n" }, 'import', '-');
my $unknown = $t->gen('--id', 'gone');
$t->ctl_ok('revoke', 'gone');

# each location answers with the outcome in a header, 401 responses too

my $locations = '';

for (['default', ''],
     ['all', 'header=X-API-Key query=api_key cookie=apikey '
             . 'authorization=Bearer'],
     ['rev', 'cookie=apikey query=api_key authorization=Bearer '
             . 'header=X-API-Key'],
     ['query', 'query=api_key'],
     ['cookie', 'cookie=apikey'])
{
    my ($name, $sources) = @$_;
    my $src = $sources ? "apikey_source $sources;" : '';

    $locations .= <<"EOF";
        location /$name/ {
            apikey on;
            $src
            add_header X-Apikey "\$apikey_status|\$apikey_source|\$apikey_id"
                       always;
            proxy_pass http://127.0.0.1:%%PORT_2%%;
        }
EOF
}

$t->write_config(<<"EOF");
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    # an 8 KB key reaches the module instead of a 414 or a 400

    large_client_header_buffers 4 32k;

    server {
        listen 127.0.0.1:%%PORT%%;
$locations
    }

    server {
        listen 127.0.0.1:%%PORT_1%% http2;
$locations
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;

        location / {
            default_type text/plain;
            return 200 "ok\\n";
        }
    }
EOF

$t->start();

# HTTP/1.1, one request per connection

sub h1 {
    my ($uri, @headers) = @_;

    my $req = "GET $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";

    while (my ($k, $v) = splice(@headers, 0, 2)) {
        $req .= "$k: $v\r\n";
    }

    return http_raw($t->port(0), "$req\r\n");
}

# HTTP/2 with prior knowledge: the request target and the headers as
# given ("Name;" is curl's way to send an empty header)

sub h2 {
    my ($uri, @headers) = @_;

    my @cmd = ($curl, '-s', '-i', '--http2-prior-knowledge', '--max-time',
               '10', '--path-as-is', '--request-target', $uri);

    while (my ($k, $v) = splice(@headers, 0, 2)) {
        push @cmd, '-H', $v eq '' ? "$k;" : "$k: $v";
    }

    push @cmd, 'http://127.0.0.1:' . $t->port(1) . '/';

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
    my $status_line = shift @lines // '';
    ($r{status}) = $status_line =~ m{^HTTP/2 (\d+)};
    $r{status} //= 0;
    $r{proto} = $status_line =~ m{^HTTP/2 } ? 2 : 0;

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        push @{$r{headers}{lc $k}}, $v;
    }

    return \%r;
}

my @protos = (['HTTP/1.1', \&h1], ['HTTP/2', \&h2]);

sub hdr {
    my ($r, $name) = @_;
    return join(', ', @{$r->{headers}{lc $name} // []});
}

# one case: status, the outcome header, the 401's WWW-Authenticate

sub check {
    my ($desc, $uri, $headers, $status, $outcome, $www) = @_;

    for my $p (@protos) {
        my ($proto, $get) = @$p;

        SKIP: {
            skip "curl without HTTP/2 support", 3
                if $proto eq 'HTTP/2' && !$curl;

            my $r = $get->($uri, @$headers);

            is($r->{status}, $status, "$desc ($proto): status");
            is(hdr($r, 'X-Apikey'), $outcome, "$desc ($proto): outcome");

            if ($status == 401) {
                is(hdr($r, 'WWW-Authenticate'),
                   $www // 'ApiKey realm="api"',
                   "$desc ($proto): www-authenticate");

            } else {
                is($r->{body}, "ok\n", "$desc ($proto): body");
            }
        }
    }
}

# percent-encoded, every byte

sub pct {
    my ($s) = @_;
    return join '', map { sprintf '%%%02X', ord } split //, $s;
}

my $OK = 'valid|header=X-API-Key|alice';
my $Q = 'query=api_key';
my $C = 'cookie=apikey';
my $H = 'header=X-API-Key';
my $B = 'authorization=Bearer';

# the default sources ignore query and cookie

check('default: header', '/default/', ['X-API-Key' => $k1], 200, $OK);
check('default: bearer', '/default/', [Authorization => "Bearer $k1"], 200,
      "valid|$B|alice");
check('default: query is not a source', "/default/?api_key=$k1", [], 401,
      'missing||');
check('default: cookie is not a source', '/default/',
      [Cookie => "apikey=$k1"], 401, 'missing||');

# each source alone

check('query alone', "/query/?api_key=$k1", [], 200, "valid|$Q|alice");
check('query among others', "/query/?a=1&api_key=$k1&b=2", [], 200,
      "valid|$Q|alice");
check('query name case', "/query/?API_KEY=$k1", [], 200, "valid|$Q|alice");
check('query name mixed case', "/query/?Api_Key=$k1", [], 200,
      "valid|$Q|alice");
check('query absent', '/query/?a=1', [], 401, 'missing||');
check('query name prefix', "/query/?api_key_x=$k1&x_api_key=$k1", [], 401,
      'missing||');
check('query in path is not an argument', "/query/api_key=$k1", [], 401,
      'missing||');
check('query unknown key', "/query/?api_key=$unknown", [], 401,
      "unknown|$Q|");

check('cookie alone', '/cookie/', [Cookie => "apikey=$k1"], 200,
      "valid|$C|alice");
check('cookie among others', '/cookie/',
      [Cookie => "a=1; apikey=$k1; b=2"], 200, "valid|$C|alice");
check('cookie without space', '/cookie/', [Cookie => "a=1;apikey=$k1;b=2"],
      200, "valid|$C|alice");
check('cookie quoted', '/cookie/', [Cookie => "apikey=\"$k1\""], 200,
      "valid|$C|alice");
check('cookie name is exact', '/cookie/', [Cookie => "APIKEY=$k1"], 401,
      'missing||');
check('cookie name prefix', '/cookie/',
      [Cookie => "apikey_x=$k1; xapikey=$k1"], 401, 'missing||');
check('cookie in another header', '/cookie/', ['X-Cookie' => "apikey=$k1"],
      401, 'missing||');

check('header alone', '/all/', ['X-API-Key' => $k1], 200, $OK);
check('query alone, all sources', "/all/?api_key=$k1", [], 200,
      "valid|$Q|alice");
check('cookie alone, all sources', '/all/', [Cookie => "apikey=$k1"], 200,
      "valid|$C|alice");
check('bearer alone, all sources', '/all/', [Authorization => "Bearer $k1"],
      200, "valid|$B|alice");
check('basic is not a source', "/all/?api_key=$k1",
      [Authorization => 'Basic YWxpY2U6c2VjcmV0'], 200, "valid|$Q|alice");

# percent decoding of query keys

check('query fully percent-encoded', '/query/?api_key=' . pct($k1), [], 200,
      "valid|$Q|alice");
check('query %2B is +', '/query/?api_key=plus%2Bkey%2B0001', [], 200,
      "valid|$Q|plus");
check('query %2b is +', '/query/?api_key=plus%2bkey%2b0001', [], 200,
      "valid|$Q|plus");
check('query + stays +', '/query/?api_key=plus+key+0001', [], 200,
      "valid|$Q|plus");
check('query + is not a space', '/query/?api_key=plus%20key%200001', [],
      401, "malformed|$Q|");

# precedence: the first present source in configured order

check('header and query equal', "/all/?api_key=$k1", ['X-API-Key' => $k1],
      200, $OK);
check('query and cookie equal', "/all/?api_key=$k1",
      [Cookie => "apikey=$k1"], 200, "valid|$Q|alice");
check('cookie and bearer equal', '/all/',
      [Cookie => "apikey=$k1", Authorization => "Bearer $k1"], 200,
      "valid|$C|alice");
check('four sources equal', "/all/?api_key=$k1",
      ['X-API-Key' => $k1, Cookie => "apikey=$k1",
       Authorization => "Bearer $k1"], 200, $OK);
check('encoded and plain equal', '/all/?api_key=' . pct($k1),
      ['X-API-Key' => $k1], 200, $OK);
check('reversed: header and query', "/rev/?api_key=$k1",
      ['X-API-Key' => $k1], 200, "valid|$Q|alice");
check('reversed: four sources', "/rev/?api_key=$k1",
      ['X-API-Key' => $k1, Cookie => "apikey=$k1",
       Authorization => "Bearer $k1"], 200, "valid|$C|alice");
check('reversed: bearer and header', '/rev/',
      ['X-API-Key' => $k1, Authorization => "Bearer $k1"], 200,
      "valid|$B|alice");

# conflicting values: malformed, named after the first source present

check('header and query differ', "/all/?api_key=$k2", ['X-API-Key' => $k1],
      401, "malformed|$H|");
check('query and cookie differ', "/all/?api_key=$k1",
      [Cookie => "apikey=$k2"], 401, "malformed|$Q|");
check('cookie and bearer differ', '/all/',
      [Cookie => "apikey=$k1", Authorization => "Bearer $k2"], 401,
      "malformed|$C|");
check('bearer and header differ', '/rev/',
      [Authorization => "Bearer $k1", 'X-API-Key' => $k2], 401,
      "malformed|$B|", 'Bearer realm="api"');
check('reversed: query and header differ', "/rev/?api_key=$k1",
      ['X-API-Key' => $k2], 401, "malformed|$Q|");
check('valid and unknown differ', "/all/?api_key=$unknown",
      ['X-API-Key' => $k1], 401, "malformed|$H|");
check('empty header is present', "/all/?api_key=$k1", ['X-API-Key' => ''],
      401, "malformed|$H|");
check('empty query is present', '/all/?api_key=', ['X-API-Key' => $k1], 401,
      "malformed|$H|");
check('bare query name is present', '/all/?api_key', ['X-API-Key' => $k1],
      401, "malformed|$H|");
check('empty cookie is present', '/all/', ['X-API-Key' => $k1,
      Cookie => 'apikey='], 401, "malformed|$H|");
check('invalid escape beside a header', '/all/?api_key=%zz',
      ['X-API-Key' => $k1], 401, "malformed|$H|");

# duplicates of one source

check('query twice', "/all/?api_key=$k1&api_key=$k1", [], 401,
      "malformed|$Q|");
check('query twice, two spellings', "/all/?api_key=$k1&API_KEY=$k1", [],
      401, "malformed|$Q|");
check('query twice, one empty', "/all/?api_key=$k1&api_key", [], 401,
      "malformed|$Q|");
check('cookie twice', '/all/', [Cookie => "apikey=$k1; apikey=$k1"], 401,
      "malformed|$C|");
check('cookie twice, two headers', '/all/',
      [Cookie => "apikey=$k1", Cookie => "a=1; apikey=$k1"], 401,
      "malformed|$C|");
check('header twice', '/all/', ['X-API-Key' => $k1, 'X-API-Key' => $k1],
      401, "malformed|$H|");

# hostile query keys

my $big = 'A' x 8192;

my @hostile_query = (
    ['empty', '', 401],
    ['1 byte', 'x', 401],
    ['8 KB', $big, 401],
    ['%00', "$k1%00", 401],
    ['%0d', "%0d$k1", 401],
    ['%0a', "$k1%0a", 401],
    ['%20', "$k1%20", 401],
    ['% at the end', "$k1%", 401],
    ['%4 at the end', "$k1%4", 401],
    ['%zz inside', substr($k1, 0, 10) . '%zz' . substr($k1, 10), 401],
    ['non-ascii encoded', '%C3%A9' x 10, 401],
    ['non-ascii', "\xc3\xa9" x 10, 401],
);

for (@hostile_query) {
    my ($desc, $value, $status) = @$_;

    check("hostile query: $desc", "/query/?api_key=$value", [], $status,
          "malformed|$Q|");
}

check('hostile query: repeated', '/query/?' . join('&',
      map { "api_key=$_" } 1 .. 50), [], 401, "malformed|$Q|");
check('hostile query: mixed with a header key', "/all/?api_key=$k1%00",
      ['X-API-Key' => $k1], 401, "malformed|$H|");
check('hostile query: mixed, the header differs', '/all/?api_key=x',
      ['X-API-Key' => $k1], 401, "malformed|$H|");

# hostile cookies

my @hostile_cookie = (
    ['empty', 'apikey=', 401, "malformed|$C|"],
    ['empty quotes', 'apikey=""', 401, "malformed|$C|"],
    ['one quote', 'apikey="', 401, "malformed|$C|"],
    ['open quote: not unquoted, unknown', "apikey=\"$k1", 401,
     "unknown|$C|"],
    ['1 byte', 'apikey=x', 401, "malformed|$C|"],
    ['8 KB', "apikey=$big", 401, "malformed|$C|"],
    ['non-ascii', 'apikey=' . ("\xc3\xa9" x 10), 401, "malformed|$C|"],
    ['percent is not decoded', 'apikey=' . pct($k1), 401, "unknown|$C|"],
    ['space inside', "apikey=\"$k1 x\"", 401, "malformed|$C|"],
    ['no =', 'apikey', 401, 'missing||'],
    ['no = among others', "a=1; apikey; b=$k1", 401, 'missing||'],
    # what applications behind see: the cookie, whitespace ignored, and
    # a name percent-decoded

    ['spaces around =', "apikey = $k1", 200, "valid|$C|alice"],
    ['space before =', "apikey =$k1", 200, "valid|$C|alice"],
    ['encoded name', "api%6bey=$k1", 200, "valid|$C|alice"],
    ['encoded name and another copy', "api%6bey=$k2; apikey=$k1", 401,
     "malformed|$C|"],
    ['quoted name', "\"apikey\"=$k1", 401, 'missing||'],
    ['200 copies', join('; ', ("apikey=$k1") x 200), 401, "malformed|$C|"],
    ['200 cookies, one key',
     join('; ', (map { "c$_=v$_" } 1 .. 199), "apikey=$k1"), 200,
     "valid|$C|alice"],
);

for (@hostile_cookie) {
    my ($desc, $value, $status, $outcome) = @$_;

    check("hostile cookie: $desc", '/cookie/', [Cookie => $value], $status,
          $outcome);
}

check('hostile cookie: mixed with a header key', '/all/',
      ['X-API-Key' => $k1, Cookie => "apikey=\"$k1"], 401, "malformed|$H|");

$t->stop();

# no key, whole or hostile, in what the module logs at info, request
# line included

my $log = $t->error_log();
my $own = join "\n", map { s/, client: .*//r } split /\n/, $log;

like($own, qr/\[info\] .*apikey: malformed key in "query=api_key"$/m,
     'malformed query keys are logged');
like($own, qr/\[info\] .*apikey: duplicate "apikey" cookie$/m,
     'duplicate cookies are logged');
like($own, qr/\[info\] .*apikey: "header=X-API-Key" and "query=api_key" carry different keys$/m,
     'conflicts are logged');

for (['first key', $k1], ['second key', $k2], ['unknown key', $unknown],
     ['8 KB key', substr($big, 0, 64)],
     ['plus key, encoded', 'plus%2'])
{
    my ($desc, $key) = @$_;

    unlike($own, qr/\Q$key\E/, "$desc not in the module's log lines");

    # nor in the request line nginx adds to the module's lines: the
    # module logs them with the query sources' arguments taken out and
    # any generated key masked

    unlike($log, qr/\Q$key\E/, "$desc not in the error log");
}

$t->check_log();

done_testing();
