#!/usr/bin/perl

# Tests for the access decision: valid keys reach a real proxied upstream
# with their identity; missing, malformed, unknown, expired, not yet valid
# and disabled keys get identical 401s; sources, realm, optional mode,
# scopes and hostile headers.

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my $valid = $t->gen('--id', 'alice', '--subject', 'Alice Example',
                    '--scopes', 'read,write', '--plan', 'gold',
                    '--expires', '2099-01-01T00:00:00Z');
my $reader = $t->gen('--id', 'reader', '--subject', 'bob',
                     '--scopes', 'read');
my $expired = $t->gen('--id', 'old', '--subject', 'carol');
$t->ctl_ok('expire', 'old', '--at', '2020-01-01T00:00:00Z');
my $future = $t->gen('--id', 'later', '--not-before', '30d');
my $disabled = $t->gen('--id', 'off', '--subject', 'dave');
$t->ctl_ok('disable', 'off');
my $plain = 'imported-plain-key-0001';
$t->ctl_ok({ input => "key,id,subject\n$plain,plain,erin\n" },
           'import', '-');

# a key of the generated shape with a correct checksum that is not stored
my $stranger = $t->gen('--id', 'stranger');
$t->ctl_ok('revoke', 'stranger');

# one character changed: the checksum no longer matches
(my $typo = $valid) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;

$t->write_config(<<'EOF', access_log => 1);
    log_format t '$request_uri $status $apikey_status id=$apikey_id';
    access_log %%PREFIX%%/logs/access.log t;

    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            proxy_set_header X-API-Key "";
            proxy_set_header X-Apikey-Id $apikey_id;
            proxy_set_header X-Apikey-Subject $apikey_subject;
            proxy_set_header X-Apikey-Plan $apikey_plan;
            proxy_set_header X-Apikey-Scopes $apikey_scopes;
            proxy_set_header X-Apikey-Expires $apikey_expires;
            proxy_set_header X-Apikey-Status $apikey_status;
            proxy_set_header X-Apikey-Source $apikey_source;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /optional {
            apikey optional;
            proxy_set_header X-Apikey-Id $apikey_id;
            proxy_set_header X-Apikey-Status $apikey_status;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /realm {
            apikey on;
            apikey_realm "private area";
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /custom {
            apikey on;
            apikey_source header=X-Token authorization=Token;
            proxy_set_header X-Apikey-Id $apikey_id;
            proxy_set_header X-Apikey-Source $apikey_source;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /write {
            apikey on;
            apikey_scope write;
            proxy_set_header X-Apikey-Id $apikey_id;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /open {
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;
        access_log off;

        location / {
            default_type text/plain;
            return 200 "id=$http_x_apikey_id subject=$http_x_apikey_subject plan=$http_x_apikey_plan scopes=$http_x_apikey_scopes expires=$http_x_apikey_expires status=$http_x_apikey_status source=$http_x_apikey_source key=$http_x_api_key\n";
        }
    }
EOF

$t->start();

my $r;

# valid keys

$r = $t->get('/a', 'X-API-Key' => $valid);
is($r->{status}, 200, 'valid key');
is($r->{body}, "id=alice subject=Alice Example plan=gold scopes=read,write "
   . "expires=2099-01-01T00:00:00Z status=valid source=header=X-API-Key "
   . "key=\n", 'identity reaches the upstream, the key does not');

$r = $t->get('/b', 'Authorization' => "Bearer $valid");
is($r->{status}, 200, 'valid key in authorization bearer');
like($r->{body}, qr/id=alice .* source=authorization=Bearer /,
     'bearer source');

$r = $t->get('/c', 'X-API-Key' => $plain);
is($r->{status}, 200, 'imported plain key');
like($r->{body}, qr/^id=plain subject=erin /, 'imported key identity');

$r = $t->get('/d', 'authorization' => "bearer   $valid  ");
is($r->{status}, 200, 'scheme is case-insensitive, spaces trimmed');

# rejected keys: one 401, whatever the reason

my %rejected = (
    missing   => [],
    malformed => ['X-API-Key' => 'short'],
    checksum  => ['X-API-Key' => $typo],
    unknown   => ['X-API-Key' => 'no-such-key-at-all'],
    stranger  => ['X-API-Key' => $stranger],
    expired   => ['X-API-Key' => $expired],
    future    => ['X-API-Key' => $future],
    disabled  => ['X-API-Key' => $disabled],
    spaces    => ['X-API-Key' => 'has a space inside'],
    empty     => ['Authorization' => 'Bearer '],
    basic     => ['Authorization' => 'Basic YWxpY2U6c2VjcmV0'],
);

my %body;

for my $case (sort keys %rejected) {
    $r = $t->get("/reject/$case", @{$rejected{$case}});
    is($r->{status}, 401, "$case key rejected");
    $body{$case} = $r->{body};

    my $scheme = $case eq 'empty' ? 'Bearer' : 'ApiKey';
    is_deeply($r->{headers}{'www-authenticate'}, ["$scheme realm=\"api\""],
              "$case key challenge");
}

my %bodies = map { $_ => 1 } values %body;
is(scalar keys %bodies, 1, 'identical bodies for every rejection');
like((keys %bodies)[0], qr/401 Authorization Required/, 'standard 401 body');

# the access log tells them apart

$t->get('/flush');
my $log = $t->access_log();

my %want = (
    missing => 'missing', malformed => 'malformed', checksum => 'malformed',
    unknown => 'unknown', stranger => 'unknown', expired => 'expired',
    future => 'not_yet_valid', disabled => 'disabled', spaces => 'malformed',
    empty => 'malformed', basic => 'missing',
);

for my $case (sort keys %want) {
    like($log, qr{^/reject/$case 401 $want{$case} id=-$}m,
         "access log status $case");
}

like($log, qr{^/a 200 valid id=alice$}m, 'access log status valid');

# duplicate key headers: upstream and nginx could disagree

$r = Apikey::Harness::http_raw($t->port(0),
    "GET /dup HTTP/1.0\r\nHost: x\r\nX-API-Key: $valid\r\n"
    . "X-API-Key: $valid\r\n\r\n");
is($r->{status}, 401, 'duplicate key header rejected');

# realm

$r = $t->get('/realm');
is_deeply($r->{headers}{'www-authenticate'}, ['ApiKey realm="private area"'],
          'configured realm');

# optional never rejects, and identifies

$r = $t->get('/optional');
is($r->{status}, 200, 'optional without key');
like($r->{body}, qr/^id= .* status=missing /, 'optional missing status');

$r = $t->get('/optional', 'X-API-Key' => 'no-such-key-at-all');
is($r->{status}, 200, 'optional with unknown key');
like($r->{body}, qr/^id= .* status=unknown /, 'optional unknown status');

$r = $t->get('/optional', 'X-API-Key' => $valid);
like($r->{body}, qr/^id=alice .* status=valid /, 'optional identifies');

# custom sources: the defaults no longer apply

$r = $t->get('/custom', 'X-Token' => $valid);
is($r->{status}, 200, 'custom header source');

$r = $t->get('/custom', 'Authorization' => "Token $valid");
is($r->{status}, 200, 'custom authorization scheme');
like($r->{body}, qr/source=authorization=Token /, 'custom source variable');

$r = $t->get('/custom', 'X-API-Key' => $valid);
is($r->{status}, 401, 'default header not a source when sources are set');

$r = $t->get('/custom', 'Authorization' => 'Token nope-nope-nope');
is_deeply($r->{headers}{'www-authenticate'}, ['Token realm="api"'],
          'challenge with the scheme the client used');

# scopes

$r = $t->get('/write', 'X-API-Key' => $valid);
is($r->{status}, 200, 'key with the required scope');

$r = $t->get('/write', 'X-API-Key' => $reader);
is($r->{status}, 403, 'key without the required scope');

$r = $t->get('/open');
is($r->{status}, 200, 'location without apikey');

# hostile input: a 401, never a crash

$r = $t->get('/h1', 'X-API-Key' => 'x' x 4000);
is($r->{status}, 401, 'very long key');

$r = Apikey::Harness::http_raw($t->port(0),
    "GET /h2 HTTP/1.0\r\nHost: x\r\nX-API-Key: \x01\x02\xff\xfe-binary\r\n\r\n");
is($r->{status}, 401, 'binary key');

$r = $t->get('/h3', 'Authorization' => 'Bearer');
is($r->{status}, 401, 'bearer without token');

$r = $t->get('/h4', 'X-API-Key' => $valid . 'x');
is($r->{status}, 401, 'valid key with a trailing character');

$t->stop();

my $errors = $t->error_log();
unlike($errors, qr/\Q$_\E/, 'no plaintext key in error log')
    for ($valid, $plain);
like($errors, qr/apikey: key "\S+" rejected: expired/,
     'rejection logged at info');

$t->check_log();

done_testing();
