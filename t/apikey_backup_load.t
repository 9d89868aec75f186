#!/usr/bin/perl

# Tests backup and restore while nginx serves under load, with two
# workers: clients send a mix of keys valid throughout, keys revoked
# after the backup, keys added after it and unknown keys while the
# backup runs, while keys change, and while the backup is restored.
# Each answer must be the one of the database at that moment: before a
# command commits, the state before it; after it, the new one; a
# request in flight while a command runs may get either.  No 5xx.
# Then a backup swapped in whole as the live directory (nginx serves
# the database through a symbolic link): served at once, as a backup
# has its own lock.mdb, never a 503.

use strict;
use warnings;

use Test::More;

use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(http_get scaled);
use IO::Handle;

my $t = Apikey::Harness->new()->require_all();

my $dir = $t->prefix();
my $clients = 4;

$t->init_db();

# a database big enough for the backup to take a moment

$t->ctl_ok('gen', '--count', '50000');

my (%keys, $csv);

for my $class (qw(A R N)) {
    $keys{$class} = [ map { "load-$class-key-$_-0123456789abcdef" } 1 .. 20 ];
}

$keys{U} = [ map { "load-U-key-$_-0123456789abcdef" } 1 .. 20 ];

$csv = "id,key\n";
$csv .= join('', map { "$_->[0]$_->[1],$keys{$_->[0]}[$_->[1] - 1]\n" }
                 map { my $c = $_; map { [ $c, $_ ] } 1 .. 20 } qw(A R));

$t->ctl_ok({ input => $csv }, 'import', '-');

# nginx reads the database through a link, swapped at the end

symlink($t->db(), "$dir/live") or die "symlink: $!";

$t->write_config(<<"EOF", workers => 2);
    apikey_db $dir/live;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            empty_gif;
        }
    }
EOF

$t->start();

# the clients: each request logged with the times around it

my $port = $t->port(0);
my $stop = "$dir/stop";
my @pids;

for my $n (1 .. $clients) {
    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open my $log, '>', "$dir/client.$n" or POSIX::_exit(1);
        $log->autoflush(1);
        my @classes = qw(A R N U);
        my $end = time() + scaled(60);

        srand($$);

        while (!-e $stop && time() < $end) {
            my $class = $classes[int rand 4];
            my $key = $keys{$class}[int rand 20];
            my $sent = time();
            my $r = eval { http_get($port, '/', 'X-API-Key' => $key) };
            my $got = time();
            printf $log "%.6f %.6f %s %d\n", $sent, $got, $class,
                   $r ? $r->{status} : 0;
        }

        close $log;
        POSIX::_exit(0);
    }

    push @pids, $pid;
}

# the commands, each with the times around it; the state each one
# leaves: the status each class of key must get

my @states = ({ A => 200, R => 200, N => 401, U => 401 });
my @windows;

sub command {
    my ($name, $state, @args) = @_;

    my %opts;
    %opts = %{shift @args} if ref $args[0] eq 'HASH';

    my $start = time();
    my ($rc, $out, $err) = $t->ctl(\%opts, @args);
    my $end = time();

    is($rc, 0, "$name under load") or diag($err);

    if ($state) {
        push @windows, [ $start, $end ];
        push @states, { %{$states[-1]}, %$state };
    }

    return $out;
}

# between the commands: the load goes on for some requests more

sub more_requests {
    my ($n) = @_;

    my $count = sub {
        my $lines = 0;

        for my $c (1 .. $clients) {
            open my $log, '<', "$dir/client.$c" or next;
            $lines++ while <$log>;
            close $log;
        }

        return $lines;
    };

    my $want = $count->() + $n;
    my $end = time() + scaled(10);

    sleep 0.05 while $count->() < $want && time() < $end;
}

more_requests(2000);

command('backup', undef, 'backup', "$dir/backup");
my $saved = $t->ctl_ok('export');

more_requests(2000);

command('revoke', { R => 401 }, { input => join("\n", map { "R$_" } 1 .. 20)
                                           . "\n" }, 'revoke', '-');
more_requests(2000);

command('import', { N => 200 },
        { input => "id,key\n" . join('', map { "N$_,$keys{N}[$_ - 1]\n" }
                                         1 .. 20) },
        'import', '-');
command('gen', {}, 'gen', '--count', '10');

more_requests(2000);

my $out = command('restore', { R => 200, N => 401 }, 'restore',
                  "$dir/backup");
like($out, qr/^restored 50040 keys from/, 'restore output');

more_requests(2000);

open my $fh, '>', $stop or die;
close $fh;

waitpid($_, 0) for @pids;

is($t->ctl_ok('export'), $saved, 'after restore: the backup\'s keys');

# each answer against the states possible while it was in flight: state
# k may be seen from the start of the command that made it to the end of
# the one that replaced it

my ($total, @wrong, %count);

for my $n (1 .. $clients) {
    open my $log, '<', "$dir/client.$n" or die;

    while (<$log>) {
        my ($sent, $got, $class, $status) = split;
        my %allowed;

        for my $k (0 .. $#states) {
            my $from = $k == 0 ? 0 : $windows[$k - 1][0];
            my $to = $k == $#states ? 9e9 : $windows[$k][1];

            $allowed{ $states[$k]{$class} } = 1
                if $sent <= $to && $got >= $from;
        }

        $total++;
        $count{$status}++;

        push @wrong, "$class got $status at $sent-$got"
            unless $allowed{$status};
    }

    close $log;
}

diag("$total requests: " . join(', ', map { "$_: $count{$_}" }
                                      sort keys %count));

cmp_ok($total, '>', 100, 'enough requests under load');
is(scalar(grep { $_ >= 500 || $_ == 0 } keys %count), 0, 'no 5xx, no failure');
is(scalar @wrong, 0, 'every answer the one of its moment')
    or diag(join("\n", @wrong[0 .. ($#wrong < 9 ? $#wrong : 9)]));

# each class seen in each state at least once: the load covered them

my %seen;

for my $n (1 .. $clients) {
    open my $log, '<', "$dir/client.$n" or die;

    while (<$log>) {
        my ($sent, $got, $class, $status) = split;
        $seen{"$class$status"}++;
    }

    close $log;
}

ok($seen{R401} && $seen{R200} && $seen{N200} && $seen{N401},
   'revoked and added keys seen in both states');

# a backup swapped in as the live directory: a key revoked in the live
# database after the backup is valid in it; once the workers follow the
# link, it is accepted, and no request is answered 503 on the way

$t->ctl_ok('backup', "$dir/swapped");
$t->ctl_ok('revoke', 'A1');

my $a1 = $keys{A}[0];
my $before = http_get($port, '/', 'X-API-Key' => $a1);
is($before->{status}, 401, 'swap: the key revoked in the live database');

symlink("$dir/swapped", "$dir/live.new") or die "symlink: $!";
rename("$dir/live.new", "$dir/live") or die "rename: $!";

my (%swap, $switched);
my $end = time() + scaled(10);

while (time() < $end) {
    my $r = eval { http_get($port, '/', 'X-API-Key' => $a1) };
    my $status = $r ? $r->{status} : 0;

    $swap{$status}++;

    # served from the backup: some more requests, then done

    $switched //= time() if $status == 200;
    last if defined $switched && time() > $switched + 1.5;

    sleep 0.02;
}

ok(defined $switched, 'swap: the backup served, the key valid in it')
    or diag(join(', ', map { "$_: $swap{$_}" } sort keys %swap));
is(scalar(grep { $_ != 200 && $_ != 401 } keys %swap), 0,
   'swap: no 503 while the workers switch')
    or diag(join(', ', map { "$_: $swap{$_}" } sort keys %swap));

$t->stop();

$t->check_log();

done_testing();
