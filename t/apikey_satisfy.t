#!/usr/bin/perl

# Tests for the satisfy matrix: satisfy any|all, with allow/deny and
# auth_request, where apikey must answer exactly as auth_basic does in the
# same place (the same table is run with auth_basic instead of apikey, and
# each status and challenge compared).

use strict;
use warnings;

use Test::More;

use MIME::Base64 qw(encode_base64);

use lib 't/lib';
use Apikey::Harness qw(http_raw write_file);

my $t = Apikey::Harness->new()->require_all()
    ->require_modules('http_auth_request');

$t->init_db();

my $both = $t->gen('--id', 'both', '--scopes', 'read,write');

write_file($t->prefix() . '/htpasswd', "alice:{PLAIN}secret\n");
chmod 0644, $t->prefix() . '/htpasswd';

# the satisfy matrix: the same locations with apikey and with auth_basic

my @satisfy = qw(any all);
my %access = (
    allow => 'allow 127.0.0.1; deny all;',
    deny  => 'deny all;',
    none  => '',
);
my %subreq = (
    none  => '',
    ok    => 'auth_request /auth-ok;',
    no    => 'auth_request /auth-no;',
);
my %auth = (
    apikey => 'apikey on;',
    basic  => 'auth_basic "api"; auth_basic_user_file %%PREFIX%%/htpasswd;',
);

my $matrix = '';

for my $a (sort keys %auth) {
    for my $s (@satisfy) {
        for my $ac (sort keys %access) {
            for my $sr (sort keys %subreq) {
                $matrix .= <<"EOF";
        location /m/$a/$s/$ac/$sr/ {
            satisfy $s;
            $access{$ac}
            $subreq{$sr}
            $auth{$a}
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }
EOF
            }
        }
    }
}

$t->write_config(<<"EOF");
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /auth-ok {
            internal;
            return 204;
        }

        location = /auth-no {
            internal;
            return 403;
        }

$matrix
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;

        location / {
            return 200 "ok\\n";
        }
    }
EOF

$t->start();

sub req {
    my ($method, $uri, @headers) = @_;

    my $req = "$method $uri HTTP/1.1\r\nHost: localhost\r\n"
              . "Connection: close\r\n";
    $req .= "Content-Length: 0\r\n" if $method =~ /^(POST|PUT|DELETE)$/;

    while (my ($k, $v) = splice(@headers, 0, 2)) {
        $req .= "$k: $v\r\n";
    }

    return http_raw($t->port(0), "$req\r\n");
}

sub hdr {
    my ($r, $name) = @_;
    return join(', ', @{$r->{headers}{lc $name} // []});
}

# the satisfy matrix: apikey answers as auth_basic does

my %cred = (
    apikey => { good => ['X-API-Key' => $both],
                bad  => ['X-API-Key' => 'no-such-key-at-all'],
                none => [] },
    basic  => { good => [Authorization => 'Basic '
                                          . encode_base64('alice:secret', '')],
                bad  => [Authorization => 'Basic '
                                          . encode_base64('alice:wrong', '')],
                none => [] },
);

for my $s (@satisfy) {
    for my $ac (sort keys %access) {
        for my $sr (sort keys %subreq) {
            for my $c (qw(good bad none)) {
                my %got;

                for my $a (qw(apikey basic)) {
                    my $x = req('GET', "/m/$a/$s/$ac/$sr/", @{$cred{$a}{$c}});
                    $got{$a} = $x->{status} . ' '
                               . (hdr($x, 'WWW-Authenticate') ? 'challenge'
                                                              : '-');
                }

                is($got{apikey}, $got{basic},
                   "satisfy $s, $ac, auth_request $sr, $c credentials");
            }
        }
    }
}

$t->stop();

$t->check_log();

done_testing();
