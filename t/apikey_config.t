#!/usr/bin/perl

# Tests for the configuration of ngx_http_apikey_module: nginx -t with
# good and bad directives, and the inheritance of apikey, apikey_db,
# apikey_secret, apikey_realm and apikey_source, as seen in real
# responses.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_all();

my $prefix = $t->prefix();

$t->init_db();

my $key = $t->gen('--id', 'conf');

# a configuration fragment protected by the module, for nginx -t

sub conf_test {
    my ($http) = @_;

    $t->write_config(<<"EOF");
    server {
        listen 127.0.0.1:%%PORT%%;

$http
        location / {
            empty_gif;
        }
    }
EOF

    return $t->nginx_test();
}

# nginx -t output has the message at emerg with the place in the file

sub emerg_like {
    my ($out, $msg, $name) = @_;

    like($out, qr/^nginx: \[emerg\] \Q$msg\E in \Q$prefix\E\/nginx\.conf:\d+$/m,
         $name);
}


sub random_hex {
    return join '', map { sprintf '%02x', int rand 256 } 1 .. $_[0];
}

my ($rc, $out);

# a good configuration

($rc, $out) = conf_test(<<'EOF');
        apikey on;
        apikey_db %%DB%%;
        apikey_secret %%SECRET%%;
EOF

is($rc, 0, 'nginx -t passes');
like($out, qr/syntax is ok/, 'nginx -t syntax is ok');
like($out, qr/test is successful/, 'nginx -t test is successful');

# the secret file is missing

my $missing = "$prefix/missing.secret";

($rc, $out) = conf_test(<<"EOF");
        apikey on;
        apikey_db %%DB%%;
        apikey_secret $missing;
EOF

is($rc, 1, 'missing secret fails');
emerg_like($out, qq{cannot load apikey secret "$missing": open() failed }
           . '(2: No such file or directory)', 'missing secret names the file');

# a malformed secret file: wrong length

my $short = "$prefix/short.secret";
write_file($short, random_hex(16) . "\n");

($rc, $out) = conf_test(<<"EOF");
        apikey on;
        apikey_db %%DB%%;
        apikey_secret $short;
EOF

is($rc, 1, 'malformed secret fails');
emerg_like($out, qq{cannot load apikey secret "$short": invalid secret: }
           . 'expected 64 hexadecimal characters',
           'malformed secret is invalid');

# invalid values and duplicates

($rc, $out) = conf_test(<<'EOF');
        apikey maybe;
        apikey_db %%DB%%;
        apikey_secret %%SECRET%%;
EOF

is($rc, 1, 'apikey maybe fails');
emerg_like($out, 'invalid value "maybe", it must be "on", "off" or '
           . '"optional"', 'apikey maybe invalid value');

($rc, $out) = conf_test(<<'EOF');
        apikey on;
        apikey_db %%DB%%;
        apikey_secret %%SECRET%%;
        apikey_source body=x;
EOF

is($rc, 1, 'apikey_source body fails');
emerg_like($out, 'invalid value "body=x", it must be "header=NAME", '
           . '"authorization=SCHEME", "query=ARG" or "cookie=NAME"',
           'apikey_source body invalid value');

for my $dup ('query=k query=K', 'header=X-Key header=x-key',
             'cookie=k header=k cookie=k')
{
    ($rc, $out) = conf_test(<<"EOF");
        apikey on;
        apikey_db %%DB%%;
        apikey_secret %%SECRET%%;
        apikey_source $dup;
EOF

    is($rc, 1, "apikey_source $dup fails");
    like($out, qr/\[emerg\] source ".*" is duplicate/,
         "apikey_source $dup is duplicate");
}

($rc, $out) = conf_test(<<'EOF');
        apikey on;
        apikey on;
        apikey_db %%DB%%;
        apikey_secret %%SECRET%%;
EOF

is($rc, 1, 'duplicate apikey fails');
emerg_like($out, '"apikey" directive is duplicate',
           'duplicate apikey is duplicate');

# one database, two different secrets

my $s1 = "$prefix/one.secret";
my $s2 = "$prefix/two.secret";
write_file($s1, random_hex(32) . "\n");
write_file($s2, random_hex(32) . "\n");

($rc, $out) = conf_test(<<"EOF");
        location /one/ {
            apikey on;
            apikey_db %%DB%%;
            apikey_secret $s1;
            empty_gif;
        }

        location /two/ {
            apikey on;
            apikey_db %%DB%%;
            apikey_secret $s2;
            empty_gif;
        }
EOF

is($rc, 1, 'two secrets for one database fail');
emerg_like($out, qq{apikey database "$prefix/db" is used with two different }
           . qq{secrets, "$s1" and "$s2"},
           'two secrets for one database named');

# apikey_db at server level, apikey_secret only where apikey is on: where
# apikey is off nothing is needed, not even the default secret

($rc, $out) = conf_test(<<'EOF');
        apikey_db %%DB%%;

        location /api/ {
            apikey on;
            apikey_secret %%SECRET%%;
            empty_gif;
        }
EOF

is($rc, 0, 'database without secret where apikey is off passes');

# inheritance, seen in real responses

$t->write_config(<<'EOF');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;
    apikey_realm "http realm";
    apikey_source header=X-Key authorization=Bearer;

    server {
        listen 127.0.0.1:%%PORT%%;

        apikey on;

        location / {
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /off/ {
            apikey off;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /nested/ {
            proxy_pass http://127.0.0.1:%%PORT_1%%;

            location /nested/off/ {
                apikey off;
                proxy_pass http://127.0.0.1:%%PORT_1%%;
            }
        }

        location /realm/ {
            apikey_realm "location realm";
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /source/ {
            apikey_source header=X-Other;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;

        location / {
            return 200 "backend\n";
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;

        apikey_realm "server realm";

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }
    }
EOF

($rc, $out) = $t->nginx_test();
is($rc, 0, 'nginx -t passes with inheritance');

$t->start();

my $r;

$r = $t->get('/');
is($r->{status}, 401, 'server apikey on inherited: no key');
is_deeply($r->{headers}{'www-authenticate'}, ['ApiKey realm="http realm"'],
          'http realm inherited');

$r = $t->get('/', 'X-Key' => $key);
is($r->{status}, 200, 'http db, secret and source inherited');
is($r->{body}, "backend\n", 'http db, secret and source inherited body');

$r = $t->get('/', 'X-API-Key' => $key);
is($r->{status}, 401, 'inherited source replaces the default');

$r = $t->get('/', 'Authorization' => "Bearer $key");
is($r->{status}, 200, 'inherited source authorization');

$r = $t->get('/', 'Authorization' => 'Bearer not-a-known-key');
is($r->{status}, 401, 'unknown bearer key');
is_deeply($r->{headers}{'www-authenticate'}, ['Bearer realm="http realm"'],
          'bearer challenge with http realm');

$r = $t->get('/off/');
is($r->{status}, 200, 'apikey off in location');
is($r->{body}, "backend\n", 'apikey off in location body');

$r = $t->get('/nested/');
is($r->{status}, 401, 'outer location inherits apikey on');

$r = $t->get('/nested/off/');
is($r->{status}, 200, 'apikey off in nested location');

$r = $t->get('/nested/off/', 'X-Key' => $key);
is($r->{status}, 200, 'apikey off in nested location with key');

$r = $t->get('/realm/');
is($r->{status}, 401, 'location realm no key');
is_deeply($r->{headers}{'www-authenticate'}, ['ApiKey realm="location realm"'],
          'location realm overrides');

$r = $t->get('/realm/', 'X-Key' => $key);
is($r->{status}, 200, 'location realm valid key');

$r = $t->get('/source/', 'X-Other' => $key);
is($r->{status}, 200, 'location source overrides');

$r = $t->get('/source/', 'X-Key' => $key);
is($r->{status}, 401, 'location source replaces inherited');

$r = Apikey::Harness::http_get($t->port(2), '/');
is($r->{status}, 401, 'server realm no key');
is_deeply($r->{headers}{'www-authenticate'}, ['ApiKey realm="server realm"'],
          'server realm overrides');

$r = Apikey::Harness::http_get($t->port(2), '/', 'X-Key' => $key);
is($r->{status}, 200, 'server location inherits http db and source');

$t->stop();

$t->check_log();

done_testing();
