#!/usr/bin/perl

# Tests two apikey_db paths that reach one environment, a symlink and the
# direct path, with two workers: they share the open environment, but
# when the symlink is swapped to another database each path follows its
# own target, whichever of the two was configured first.

use strict;
use warnings;

use Test::More;

use Time::HiRes qw(sleep time);

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

my $prefix = $t->prefix();
my $a = $t->db();
my $b = "$prefix/db-b";
my $link = "$prefix/db-link";

$t->init_db();
$t->init_db({ db => $b });

my $ka = $t->gen('--id', 'in-a');
my $kb = $t->ctl_ok({ db => $b }, 'gen', '--id', 'in-b');
chomp $kb;

sub point {
    my ($target) = @_;

    unlink "$link.new";
    symlink($target, "$link.new") or die "symlink: $!";
    rename("$link.new", $link) or die "rename: $!";
}

sub status {
    my ($uri, $key) = @_;
    return $t->get($uri, 'X-API-Key' => $key)->{status};
}

# all of 10 requests give $status within $timeout seconds

sub settles {
    my ($uri, $key, $status, $timeout) = @_;

    my $end = time() + Apikey::Harness::scaled($timeout);

    while (time() < $end) {
        my $n = grep { status($uri, $key) == $status } 1 .. 10;
        return 1 if $n == 10;
        sleep 0.2;
    }

    return 0;
}

for my $order ('link first', 'direct first') {

    point($a);

    my %loc = (
        link => "        location /link {\n"
                . "            apikey on;\n"
                . "            apikey_db $link;\n"
                . "            empty_gif;\n"
                . "        }\n",
        direct => "        location /direct {\n"
                  . "            apikey on;\n"
                  . "            apikey_db $a;\n"
                  . "            empty_gif;\n"
                  . "        }\n",
    );

    my @order = $order eq 'link first' ? qw(link direct) : qw(direct link);

    $t->write_config(<<"EOF", workers => 2);
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

$loc{$order[0]}
$loc{$order[1]}
    }
EOF

    $t->start();

    is(status('/link', $ka), 200, "$order: link to a");
    is(status('/direct', $ka), 200, "$order: direct a");
    is(status('/link', $kb), 401, "$order: link to a, key of b");

    # the symlink swapped to b: the link follows, the direct path stays

    point($b);

    ok(settles('/link', $kb, 200, 4), "$order: link follows its swap");
    ok(settles('/link', $ka, 401, 1), "$order: link no longer answers from a");

    my @direct = map { status('/direct', $ka) } 1 .. 20;
    is(scalar(grep { $_ != 200 } @direct), 0, "$order: direct path stays on a");
    is(status('/direct', $kb), 401, "$order: direct path, key of b");

    # and back

    point($a);

    ok(settles('/link', $ka, 200, 4), "$order: link follows the swap back");
    ok(settles('/link', $kb, 401, 1), "$order: link no longer answers from b");
    is(status('/direct', $ka), 200, "$order: direct path still on a");

    $t->stop();
}

$t->check_log();

done_testing();
