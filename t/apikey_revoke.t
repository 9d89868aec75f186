#!/usr/bin/perl

# Tests for changes made by apikeyctl while nginx serves: revoke,
# disable, enable and expire are seen by the very next request, with no
# reload and no sleep in between.

use strict;
use warnings;

use Test::More;

use IO::Select;
use IO::Socket::INET;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my %key;
$key{$_} = $t->gen('--id', $_, '--subject', "user $_") for qw(rev dis exp ka);

$t->write_config(<<'EOF', access_log => 1);
    log_format apikey '$request_uri $status $apikey_status $apikey_id';
    access_log %%PREFIX%%/logs/access.log apikey;

    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location = /pid {
            return 200 "$pid\n";
        }
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;
        access_log off;

        location / {
            return 200 "backend\n";
        }
    }
EOF

$t->start();

my $worker = $t->get('/pid')->{body};
my $master = master_pid();

like($worker, qr/^\d+\n\z/, 'worker pid');
like($master, qr/^\d+\n\z/, 'master pid');

my ($r, $rc, $out, $err);

# revoke

$r = $t->get('/rev', 'X-API-Key' => $key{rev});
is($r->{status}, 200, 'key valid before revoke');
is($r->{body}, "backend\n", 'key valid before revoke body');

($rc, $out, $err) = $t->ctl('revoke', 'rev');
is($rc, 0, 'revoke exit code');
is($out, "revoked \"rev\"\n", 'revoke output');

$r = $t->get('/rev', 'X-API-Key' => $key{rev});
is($r->{status}, 401, 'next request after revoke');
is_deeply($r->{headers}{'www-authenticate'}, ['ApiKey realm="api"'],
          'revoked key challenge');

# revoke seen on a keep-alive connection: nothing is kept per connection

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $t->port(0), Timeout => 5)
    or die "connect: $!";

is(keepalive_status($s, '/ka-1', $key{ka}), 200, 'keep-alive key valid');

$t->ctl_ok('revoke', 'ka');

is(keepalive_status($s, '/ka-2', $key{ka}), 401,
   'next request on the same connection after revoke');

close $s;

# disable, then enable

$r = $t->get('/dis', 'X-API-Key' => $key{dis});
is($r->{status}, 200, 'key valid before disable');

($rc, $out, $err) = $t->ctl('disable', 'dis');
is($rc, 0, 'disable exit code');
is($out, "disabled \"dis\"\n", 'disable output');

$r = $t->get('/dis-1', 'X-API-Key' => $key{dis});
is($r->{status}, 401, 'next request after disable');

($rc, $out, $err) = $t->ctl('enable', 'dis');
is($rc, 0, 'enable exit code');
is($out, "enabled \"dis\"\n", 'enable output');

$r = $t->get('/dis-2', 'X-API-Key' => $key{dis});
is($r->{status}, 200, 'next request after enable');
is($r->{body}, "backend\n", 'next request after enable body');

# expire now

$r = $t->get('/exp', 'X-API-Key' => $key{exp});
is($r->{status}, 200, 'key valid before expire');

($rc, $out, $err) = $t->ctl('expire', 'exp', '--at', 'now');
is($rc, 0, 'expire exit code');
like($out, qr/^expires "exp" at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n\z/,
     'expire output');

$r = $t->get('/exp-1', 'X-API-Key' => $key{exp});
is($r->{status}, 401, 'next request after expire');

# no reload happened

is(master_pid(), $master, 'master pid unchanged');
is($t->get('/pid')->{body}, $worker, 'worker pid unchanged');

$t->stop();

my $log = $t->access_log();

like($log, qr{^/rev 200 valid rev$}m, 'access log valid before revoke');
like($log, qr{^/rev 401 unknown -$}m, 'access log revoked is unknown');
like($log, qr{^/dis-1 401 disabled -$}m, 'access log disabled');
like($log, qr{^/dis-2 200 valid dis$}m, 'access log enabled');
like($log, qr{^/exp-1 401 expired -$}m, 'access log expired');
like($log, qr{^/ka-2 401 unknown -$}m, 'access log keep-alive revoked');

unlike($t->error_log(), qr/reconfiguring|signal \d+ \(SIGHUP\)/,
       'no reload in error log');

$t->check_log();

done_testing();

sub master_pid {
    return Apikey::Harness::slurp($t->prefix() . '/nginx.pid');
}

# one HTTP/1.1 request on an open connection; returns the status once
# the whole response (Content-Length bytes of body) has arrived

sub keepalive_status {
    my ($s, $uri, $key) = @_;

    print $s "GET $uri HTTP/1.1\r\nHost: localhost\r\nX-API-Key: $key\r\n\r\n";

    my $buf = '';
    my $sel = IO::Select->new($s);

    while ($sel->can_read(5)) {
        sysread($s, $buf, 65536, length $buf) or last;

        my ($head, $body) = split /\r\n\r\n/, $buf, 2;
        next unless defined $body;

        my ($len) = $head =~ /^Content-Length: (\d+)\r?$/mi;
        next unless defined $len && length $body >= $len;

        my ($status) = $head =~ m{^HTTP/1\.1 (\d+) };
        return $status // 0;
    }

    return 0;
}
