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

use Time::HiRes qw(sleep time);

use Apikey::Harness qw(http_get scaled);
use Apikey::Load;

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

# the clients (Apikey::Load): each request logged with the times
# around it, each answer checked against the state of its key then

my $port = $t->port(0);
my %class = (A => 'valid', R => 'revoked', N => 'added', U => 'unknown');
my %initial = (A => 200, R => 200, N => 401, U => 401);

my $load = Apikey::Load->new(port => $port, dir => "$dir/load",
                             clients => $clients);

for my $c (qw(A R N U)) {
    $load->key("$c$_", $keys{$c}[$_ - 1], $class{$c}, $initial{$c})
        for 1 .. 20;
}

$load->start();

# the commands, each with the times around it and the status each key
# it changes gets from it on

sub ids {
    my ($c, $status) = @_;
    return map { ("$c$_" => $status) } 1 .. 20;
}

sub command {
    my ($name, $states, @args) = @_;

    my %opts;
    %opts = %{shift @args} if ref $args[0] eq 'HASH';

    my ($rc, $out, $err) = $load->change($states,
                                         sub { $t->ctl(\%opts, @args) },
                                         name => $name);

    is($rc, 0, "$name under load") or diag($err);

    return $out;
}

$load->wait_requests(2000);

command('backup', {}, 'backup', "$dir/backup");
my $saved = $t->ctl_ok('export');

$load->wait_requests(2000);

command('revoke', { ids('R', 401) },
        { input => join("\n", map { "R$_" } 1 .. 20) . "\n" },
        'revoke', '-');
$load->wait_requests(2000);

command('import', { ids('N', 200) },
        { input => "id,key\n" . join('', map { "N$_,$keys{N}[$_ - 1]\n" }
                                         1 .. 20) },
        'import', '-');
command('gen', {}, 'gen', '--count', '10');

$load->wait_requests(2000);

my $out = command('restore', { ids('R', 200), ids('N', 401) }, 'restore',
                  "$dir/backup");
like($out, qr/^restored 50040 keys from/, 'restore output');

$load->wait_requests(2000);

$load->stop();

is($t->ctl_ok('export'), $saved, 'after restore: the backup\'s keys');

my $s = $load->ok(name => 'backup and restore under load', retried => 0);

# each class seen in each state at least once: the load covered them

my $c = $s->{classes};

ok($c->{'revoked 401'} && $c->{'revoked 200'} && $c->{'added 200'}
   && $c->{'added 401'}, 'revoked and added keys seen in both states');

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
