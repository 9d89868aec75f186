#!/usr/bin/perl

# Tests for "make demo": tools/demo.sh makes a database with one key and
# runs nginx in the foreground in front of a small upstream; the curl
# line it prints works, and the failing one fails.

use strict;
use warnings;

use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

use lib 't/lib';
use Apikey::Harness qw(http_get);

my $t = Apikey::Harness->new()->require_all();

my ($port, $upstream) = ($t->port(0), $t->port(1));
my $dir = $t->prefix() . '/demo';
my $out = $t->prefix() . '/demo.out';

my $pid = fork() // die "fork: $!";

if ($pid == 0) {
    $ENV{DEMO_PORT} = $port;
    $ENV{DEMO_UPSTREAM_PORT} = $upstream;
    $ENV{DEMO_DIR} = $dir;
    $ENV{NGINX_BIN} = $t->{nginx};
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $out or die;    # appends: nginx reopens it
    open STDERR, '>&', \*STDOUT;
    exec "$t->{root}/tools/demo.sh" or die "exec: $!";
}

my $text = '';

for (1 .. 100) {
    $text = Apikey::Harness::slurp($out);
    last if $text =~ /Ctrl-C stops nginx/
            && IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port);
    last if waitpid($pid, WNOHANG) == $pid;
    sleep 0.1;
}

my ($good) = $text =~ /curl -H 'X-API-Key: (\S+)' http:\/\/127\.0\.0\.1:$port\//;
my ($bad) = $text =~ /curl -i -H 'X-API-Key: (\S+)' http:\/\/127\.0\.0\.1:$port\//;

ok(defined $good, 'demo prints a working curl line');
ok(defined $bad, 'demo prints a failing curl line');

my $r = http_get($port, '/', 'X-API-Key' => $good // '');
is($r->{status}, 200, 'demo key accepted');
is($r->{body}, "hello demo user (key id demo)\n", 'demo upstream answers');

$r = http_get($port, '/', 'X-API-Key' => $bad // '');
is($r->{status}, 401, 'demo wrong key rejected');

$r = http_get($port, '/');
is($r->{status}, 401, 'demo missing key rejected');

kill 'QUIT', $pid;

for (1 .. 100) {
    last if waitpid($pid, WNOHANG) == $pid;
    sleep 0.05;
}

$text = Apikey::Harness::slurp($out);
unlike($text, qr/\[(?:alert|emerg)\]/, 'no alerts in demo log');
like($text, qr/"GET \/ HTTP\/1\.0" 200 apikey=valid id=demo/,
     'demo access log');

done_testing();
