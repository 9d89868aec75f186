#!/usr/bin/perl

# Tests rotate while nginx serves with two workers: during the grace
# both the old and the new key are accepted by every worker; once it
# ends the old key is refused as expired and the new one still accepted,
# with no reload.

use strict;
use warnings;

use Test::More;

use JSON::PP;
use Time::HiRes qw(time);

use Apikey::Harness qw(scaled);

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my $old = $t->gen('--id', 'old', '--subject', 'Bob', '--scopes', 'read',
                  '--plan', 'gold');

$t->write_config(<<'EOF', workers => 2, access_log => 1);
    log_format apikey '$request_uri $status $apikey_status $apikey_id $pid';
    access_log %%PREFIX%%/logs/access.log apikey;

    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%% reuseport;

        location / {
            apikey on;
            apikey_scope read;
            proxy_set_header X-Key-Id $apikey_id;
            proxy_set_header X-Worker $pid;
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
            return 200 "$http_x_key_id $http_x_worker\n";
        }
    }
EOF

$t->start();

my $master = master_pid();

# both workers answer: reuseport spreads connections by source port

my %workers;
my $end = time() + scaled(10);

while (keys %workers < 2 && time() < $end) {
    $workers{$t->get('/pid')->{body}} = 1;
}

is(scalar(keys %workers), 2, 'two workers answer');

is(status($old), 'old', 'old key accepted before rotate');

# rotate with a grace of 4 s (the expiry is whole seconds: 3 s at least)

my $t0 = time();

my ($rc, $out, $err) = $t->ctl('rotate', 'old', '--grace', '4s',
                               '--format', 'json');
is($rc, 0, 'rotate exit code');
is($err, '', 'rotate stderr');

my $j = eval { JSON::PP->new()->decode($out) } // {};
my $new = $j->{key} // '';
my $new_id = $j->{id} // '';

like($new_id, qr/^[0-9a-f]{16}$/, 'new key id');

# in the grace: every request, on both workers, with either key

my (%seen, @old, @new);

for (1 .. 10) {
    push @old, status($old, \%seen);
    push @new, status($new, \%seen);
}

my $t1 = time();

SKIP: {
    skip sprintf('the requests took %.1f s, past the grace', $t1 - $t0), 3
        if $t1 - $t0 > 2.5;

    is(join(',', grep { $_ ne 'old' } @old), '', 'old key in the grace');
    is(join(',', grep { $_ ne $new_id } @new), '', 'new key in the grace');
    is(scalar(keys %seen), 2, 'both workers answered in the grace');
}

# after the grace: poll, with a deadline, until the old key is refused

my $r = $t->wait_for(30, sub { $_[0]{status} == 401 }, '/',
                     'X-API-Key' => $old);
is($r->{status}, 401, 'old key refused after the grace');
ok(time() - $t0 >= 3, 'not refused before the grace ended');

%seen = ();
@old = ();
@new = ();

for (1 .. 10) {
    push @old, status($old, \%seen);
    push @new, status($new, \%seen);
}

is(join(',', grep { $_ ne '401' } @old), '', 'old key refused by every worker');
is(join(',', grep { $_ ne $new_id } @new), '', 'new key accepted after');
is(scalar(keys %seen), 2, 'both workers answered after the grace');

like($t->access_log(), qr{^/ 401 expired \S+ \d+$}m,
     'old key logged as expired');

# no reload: the same master and workers

is(master_pid(), $master, 'master pid unchanged');
is(scalar(grep { !$workers{$_} } keys %seen), 0, 'worker pids unchanged');
unlike($t->error_log(), qr/reconfiguring|signal 1 /, 'no reload');

my ($crc, $cout, $cerr) = $t->ctl('check');

SKIP: {
    skip 'apikeyctl check is not built yet', 1
        if $crc == 1 && $cerr =~ /not built yet/;
    is($crc, 0, 'check after rotate') or diag($cout . $cerr);
}

$t->stop();
$t->check_log();

done_testing();

# the id a key is accepted as, or the status; the worker, in %$seen

sub status {
    my ($key, $seen) = @_;

    my $r = $t->get('/', 'X-API-Key' => $key);

    return $r->{status} unless $r->{status} == 200;

    my ($id, $pid) = $r->{body} =~ /^(\S+) (\d+)\n\z/ or return 'body';
    $seen->{"$pid\n"} = 1 if $seen;

    return $id;
}

sub master_pid {
    return Apikey::Harness::slurp($t->prefix() . '/nginx.pid');
}
