#!/usr/bin/perl

# Tests for a database that cannot be used: missing at start, made with
# another secret, unreadable by the workers.  nginx starts, protected
# locations answer 503 with a clear error-log line, and the module
# recovers by itself, without a reload, once the database is fixed.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_all();

my $prefix = $t->prefix();
my $db = $t->db();
my $other_db = "$prefix/db-other";
my $other_secret = "$prefix/other.secret";
my $perm_db = "$prefix/db-perm";
my $root = $> == 0;

# the secret exists, the database does not

write_file($t->secret(), random_hex(32) . "\n");
write_file($other_secret, random_hex(32) . "\n");

# a database made with the main secret, used with another one

my $user = Apikey::Harness::worker_user();

$t->ctl_ok({ db => $other_db }, 'init', defined $user ? ('--user', $user) : ());
my $other_key = $t->ctl_ok({ db => $other_db }, 'gen', '--id', 'other');
chomp $other_key;

# a database the workers cannot read: no --user, files 0600 root

my $perm_key;

if ($root) {
    $t->ctl_ok({ db => $perm_db }, 'init');
    $perm_key = $t->ctl_ok({ db => $perm_db }, 'gen', '--id', 'perm');
    chomp $perm_key;
}

$t->write_config(<<"EOF");
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            apikey_db %%DB%%;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /other/ {
            apikey on;
            apikey_db $other_db;
            apikey_secret $other_secret;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /perm/ {
            apikey on;
            apikey_db $perm_db;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /open/ {
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;

        location / {
            return 200 "backend\n";
        }
    }
EOF

my ($rc, $out) = $t->nginx_test();
is($rc, 0, 'nginx -t passes with a missing database');

$t->start();

my $r;

# missing at start

$r = $t->get('/', 'X-API-Key' => 'ak_not-yet-there');
is($r->{status}, 503, 'missing database 503');

$r = $t->get('/open/');
is($r->{status}, 200, 'unprotected location still served');

log_like('crit', qq{apikey database "$db" is not usable: stat() }
         . qq{"$db/data.mdb" failed (2: No such file or directory)},
         'missing database logged');

$t->init_db();
my $key = $t->gen('--id', 'late');

$r = $t->wait_for(5, sub { $_[0]{status} == 200 }, '/', 'X-API-Key' => $key);
is($r->{status}, 200, 'database created without reload');
is($r->{body}, "backend\n", 'database created without reload body');

log_like('notice', qq{apikey database "$db" is usable again},
         'database usable again logged');

# made with another secret

$r = $t->get('/other/', 'X-API-Key' => $other_key);
is($r->{status}, 503, 'another secret 503');

log_like('crit', qq{apikey database "$other_db" is not usable: database }
         . qq{was made with another secret (secret "$other_secret")},
         'another secret logged');

# unreadable by the workers

SKIP: {
    skip 'workers run as the test user unless the tests run as root', 4
        unless $root;

    $r = $t->get('/perm/', 'X-API-Key' => $perm_key);
    is($r->{status}, 503, 'unreadable database 503');

    log_like('crit', qq{apikey database "$perm_db" is not usable: stat() }
             . qq{"$perm_db/data.mdb" failed (13: Permission denied)},
             'unreadable database logged');

    my ($rc, $out, $err) = $t->ctl({ db => $perm_db }, 'init',
                                   '--user', 'nobody');
    is($rc, 0, 'init --user on existing database');

    $r = $t->wait_for(5, sub { $_[0]{status} == 200 }, '/perm/',
                      'X-API-Key' => $perm_key);
    is($r->{status}, 200, 'modes fixed without reload');
}

# contexts where apikey is off and no apikey_db is set (here the server
# level, which inherits only apikey_secret) need no database

unlike($t->error_log(), qr{"/var/lib/apikey"},
       'no default database where none is configured');

$t->stop();

$t->check_log();

done_testing();

# a line of the error log at that level with exactly that message (and
# the request's context when logged while serving one)

sub log_like {
    my ($level, $msg, $name) = @_;

    my $head = qr/\S+ \S+ \[$level\] \d+#\d+: (?:\*\d+ )?/;

    like($t->error_log(), qr/^$head\Q$msg\E(?:, client: .*)?$/m, $name);
}


sub random_hex {
    return join '', map { sprintf '%02x', int rand 256 } 1 .. $_[0];
}
