#!/usr/bin/perl

# Tests a secret file that is not a regular file (issue 9, red team): a
# FIFO with no writer used to block "nginx -t", the start of nginx and
# apikeyctl in open(), forever.  A FIFO, a socket and a device are
# refused at once with "not a regular file", by nginx -t and by
# apikeyctl -s; each run is given a deadline, so a hang fails the test
# instead of blocking it.  A symlink to a regular file still works.

use strict;
use warnings;

use Test::More;

use IO::Socket::UNIX;
use POSIX qw(WNOHANG mkfifo);
use Time::HiRes qw(sleep);

use Apikey::Harness qw(scaled);

my $t = Apikey::Harness->new()->require_all();

my $dir = $t->prefix();

$t->init_db();

my $key = $t->gen('--id', 'k');

# a command with a deadline: (exit code or 'hung', output)

sub run {
    my (@cmd) = @_;

    my $out = "$dir/run.out";

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or die;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or die "exec $cmd[0]: $!";
    }

    for (1 .. scaled(200)) {
        if (waitpid($pid, WNOHANG) == $pid) {
            return ($? >> 8, Apikey::Harness::slurp($out));
        }
        sleep 0.05;
    }

    kill 'KILL', $pid;
    waitpid($pid, 0);

    return ('hung', Apikey::Harness::slurp($out));
}

mkfifo("$dir/fifo", 0600) or die "mkfifo: $!";

my $sock = IO::Socket::UNIX->new(Local => "$dir/sock", Listen => 1)
    or die "socket: $!";

symlink $t->secret(), "$dir/link" or die "symlink: $!";

my %special = (
    FIFO => "$dir/fifo",
    socket => "$dir/sock",
    device => '/dev/zero',
);

for my $what (sort keys %special) {
    my $path = $special{$what};

    $t->write_config(<<"EOF");
    apikey_db %%DB%%;
    apikey_secret $path;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            empty_gif;
        }
    }
EOF

    my ($rc, $out) = run($t->{nginx}, '-t', '-p', "$dir/",
                         '-e', "$dir/logs/test.log",
                         '-c', "$dir/nginx.conf");

    is($rc, 1, "nginx -t, a $what: exit 1, at once");
    like($out, qr/cannot load apikey secret "\Q$path\E": not a regular file/,
         "nginx -t, a $what: not a regular file");

    ($rc, $out) = run($t->{apikeyctl}, '-d', $t->db(), '-s', $path, 'list');

    isnt($rc, 0, "apikeyctl -s, a $what: an error, at once");
    isnt($rc, 'hung', "apikeyctl -s, a $what: not hung");
    like($out, qr/secret "\Q$path\E": not a regular file/,
         "apikeyctl -s, a $what: not a regular file");
}

# a symlink to the secret: followed, as before

$t->write_config(<<"EOF");
    apikey_db %%DB%%;
    apikey_secret $dir/link;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            empty_gif;
        }
    }
EOF

my ($rc, $out) = run($t->{nginx}, '-t', '-p', "$dir/",
                     '-e', "$dir/logs/test.log", '-c', "$dir/nginx.conf");
is($rc, 0, 'nginx -t, a symlink to the secret: ok') or diag($out);

($rc, $out) = run($t->{apikeyctl}, '-d', $t->db(), '-s', "$dir/link",
                  'list');
is($rc, 0, 'apikeyctl -s, a symlink to the secret: ok') or diag($out);

$t->start();
is($t->get('/', 'X-API-Key', $key)->{status}, 200,
   'a symlink to the secret: the key accepted');

$t->check_log();
$t->stop();

done_testing();
