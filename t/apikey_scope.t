#!/usr/bin/perl

# Tests apikey_scope: every scope listed is required, in one directive or
# several, and a scope that no key can hold is refused by nginx -t.

use strict;
use warnings;

use Test::More;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my $read = $t->gen('--id', 'reader', '--scopes', 'read');
my $admin = $t->gen('--id', 'admin', '--scopes', 'read,admin');
my $other = $t->gen('--id', 'other', '--scopes', 'admin');
my $none = $t->gen('--id', 'none');

my $prefix = $t->prefix();

# scopes nginx -t refuses

for my $bad ('""', '"a,b"', '"a b"', 'read ""', 'read "x,"', '"r\"d"',
             '"\x{e9}"')
{
    $t->write_config(<<"EOF");
    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            apikey_db %%DB%%;
            apikey_secret %%SECRET%%;
            apikey_scope $bad;
            empty_gif;
        }
    }
EOF

    my ($rc, $out) = $t->nginx_test();

    isnt($rc, 0, "nginx -t refuses apikey_scope $bad");
    like($out, qr/\[emerg\] invalid value ".*", a scope is letters/,
         "apikey_scope $bad message");
}

$t->write_config(<<'EOF');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /two {
            apikey on;
            apikey_scope read admin;
            empty_gif;
        }

        location /twice {
            apikey on;
            apikey_scope read;
            apikey_scope admin;
            empty_gif;
        }

        location /one {
            apikey on;
            apikey_scope read;
            empty_gif;
        }

        location /none {
            apikey on;
            empty_gif;
        }
    }
EOF

my ($rc, $out) = $t->nginx_test();
is($rc, 0, 'nginx -t with scopes') or diag($out);

$t->start();

sub status {
    my ($uri, $key) = @_;
    return $t->get($uri, 'X-API-Key' => $key)->{status};
}

is(status('/two', $read), 403, 'two scopes: the first alone is not enough');
is(status('/two', $other), 403, 'two scopes: the second alone is not enough');
is(status('/two', $admin), 200, 'two scopes: both held');
is(status('/two', $none), 403, 'two scopes: none held');

is(status('/twice', $read), 403, 'two directives: the first alone');
is(status('/twice', $other), 403, 'two directives: the second alone');
is(status('/twice', $admin), 200, 'two directives: both held');

is(status('/one', $read), 200, 'one scope held');
is(status('/one', $other), 403, 'one scope not held');
is(status('/none', $none), 200, 'no scope required');

is($t->get('/two', 'X-API-Key' => $read)->{headers}{'www-authenticate'},
   undef, 'forbidden: no challenge');

$t->stop();

$t->check_log();

done_testing();
