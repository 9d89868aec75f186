#!/usr/bin/perl

# Tests for the life of the database under a running nginx: a reload, a
# map grown by apikeyctl (MDB_MAP_RESIZED in the workers), a new
# database moved into place by swapping a symlink, and reader slots.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);

use lib 't/lib';
use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

my $prefix = $t->prefix();
my $link = "$prefix/current";
my ($gen1, $gen2) = ("$prefix/gen-1", "$prefix/gen-2");

# two databases with the same secret; the configured path is a symlink

$t->init_db();
my $key = $t->gen('--id', 'main');

$t->ctl_ok({ db => $gen1 }, 'init', Apikey::Harness::worker_user()
           ? ('--user', Apikey::Harness::worker_user()) : ());
my $old = $t->ctl_ok({ db => $gen1 }, 'gen', '--id', 'old');
chomp $old;

$t->ctl_ok({ db => $gen2 }, 'init', Apikey::Harness::worker_user()
           ? ('--user', Apikey::Harness::worker_user()) : ());
my $new = $t->ctl_ok({ db => $gen2 }, 'gen', '--id', 'new');
chomp $new;

symlink($gen1, $link) or die "symlink: $!";

$t->write_config(<<"EOF");
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            apikey_db %%DB%%;
            empty_gif;
        }

        location /swap/ {
            apikey on;
            apikey_db $link;
            empty_gif;
        }
    }
EOF

$t->start();

is($t->get('/', 'X-API-Key' => $key)->{status}, 200, 'valid before reload');

# reload: new workers open the database again, old ones close it

my $worker = worker_pid();
kill 'HUP', $t->{pid};

# under valgrind the old worker serves a while longer: wait till it exits

for (1 .. Apikey::Harness::scaled(100)) {
    my $w = worker_pid();
    last if defined $w && defined $worker && $w != $worker
            && !($ENV{TEST_NGINX_VALGRIND} && kill 0, $worker);
    sleep 0.05;
}

isnt(worker_pid(), $worker, 'a new worker after reload');
is($t->get('/', 'X-API-Key' => $key)->{status}, 200, 'valid after reload');

# the map grown under the workers: the next read sees MDB_MAP_RESIZED

$t->ctl_ok('init', '--map-size', '16g');

my $csv = "key,id\n" . join('', map { "grown-key-$_-abcdef,grown$_\n" }
                                    1 .. 2000);
$t->ctl_ok({ input => $csv }, 'import', '-');

is($t->get('/', 'X-API-Key' => $key)->{status}, 200,
   'valid after the map grew');
is($t->get('/', 'X-API-Key' => 'grown-key-1999-abcdef')->{status}, 200,
   'key imported into the grown map');

my $info = `mdb_stat -e $prefix/db 2>&1`;
like($info, qr/Map size: 17179869184/, 'map size is 16g');

# a new database moved into place: a symlink swap, seen within a second

is($t->get('/swap/', 'X-API-Key' => $old)->{status}, 200,
   'old database key before swap');
is($t->get('/swap/', 'X-API-Key' => $new)->{status}, 401,
   'new database key before swap');

symlink($gen2, "$link.tmp") or die "symlink: $!";
rename("$link.tmp", $link) or die "rename: $!";

my $r = $t->wait_for(4, sub { $_[0]{status} == 200 }, '/swap/',
                     'X-API-Key' => $new);
is($r->{status}, 200, 'new database key after swap');
is($t->get('/swap/', 'X-API-Key' => $old)->{status}, 401,
   'old database key after swap');

like($t->error_log(), qr/apikey database "\Q$link\E" was replaced, reopening/,
     'swap logged');

$t->stop();

# every worker has exited: no reader slot is left behind

my $readers = `mdb_stat -r $prefix/db 2>&1`;
like($readers, qr/\(no active readers\)/, 'no reader slots left after exit');

$t->check_log();

done_testing();

# the pid of the one worker process, from the master's children

sub worker_pid {
    my $master = $t->{pid};
    my @kids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        close $fh;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        my $cmd = eval {
            open my $c, '<', "/proc/$pid/cmdline" or die;
            local $/;
            <$c>;
        } // '';
        # under valgrind the title is valgrind's: the newest child wins

        push @kids, $pid if $ppid == $master
                            && ($cmd =~ /worker process/
                                && $cmd !~ /shutting down/
                                || $ENV{TEST_NGINX_VALGRIND});
    }

    return (sort { $b <=> $a } @kids)[0];
}
