#!/usr/bin/perl

# Tests that a plaintext key never reaches the database file, the error
# log (at info level, after valid, unknown, expired, disabled, not yet
# valid and malformed keys) or the access log (which logs the request,
# the status and the apikey variables).

use strict;
use warnings;

use Test::More;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my %key;

$key{valid} = $t->gen('--id', 'valid', '--subject', 'someone');
$key{expired} = $t->gen('--id', 'expired');
$key{disabled} = $t->gen('--id', 'disabled');
$key{future} = $t->gen('--id', 'future', '--not-before', '1d');
$key{unknown} = $t->gen('--id', 'gone');

$t->ctl_ok('expire', 'expired', '--at', 'now');
$t->ctl_ok('disable', 'disabled');
$t->ctl_ok('revoke', 'gone');

$key{plain} = sprintf 'plain-secret-%08x%08x', int rand 2**32,
                      int rand 2**32;
$t->ctl_ok({ input => "key,id\n$key{plain},plain\n" }, 'import', '-');

# a generated key with one character changed: a bad checksum

$key{typo} = $key{valid};
substr($key{typo}, 12, 1) = substr($key{typo}, 12, 1) eq 'Q' ? 'R' : 'Q';

$key{spaced} = sprintf 'with space %08x%08x', int rand 2**32,
                       int rand 2**32;

$t->write_config(<<'EOF', access_log => 1);
    log_format secrets '$request_uri $status $apikey_status $apikey_id '
                       '$apikey_hint';
    access_log %%PREFIX%%/logs/access.log secrets;

    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        # keys in the request line: the error log masks them, the
        # access log is nginx's own

        location /quiet/ {
            apikey on;
            access_log off;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
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

my %status = (valid => 200, expired => 401, disabled => 401, future => 401,
              unknown => 401, plain => 200, typo => 401, spaced => 401);

for my $name (sort keys %status) {
    my $r = $t->get("/$name", 'X-API-Key' => $key{$name});
    is($r->{status}, $status{$name}, "$name key status");
}

my $r = $t->get('/bearer', 'Authorization' => "Bearer $key{unknown}");
is($r->{status}, 401, 'unknown bearer key status');

# a mistyped key in the request line of a logged rejection is masked, as
# a whole key is

$r = $t->get("/quiet/typo?k=$key{typo}", 'X-API-Key' => $key{typo});
is($r->{status}, 401, 'mistyped key in the query status');

$r = $t->get("/quiet/unknown?k=$key{unknown}", 'X-API-Key' => $key{unknown});
is($r->{status}, 401, 'unknown key in the query status');

$t->stop();

my $hint = substr($key{valid}, 0, 7) . '...';
my $access = $t->access_log();
my $error = $t->error_log();

# the logs say what happened, with hints only

like($access, qr{^/valid 200 valid valid \Q$hint\E$}m, 'access log valid');
like($access, qr{^/expired 401 expired - \Q${\ hint_of($key{expired})}\E$}m,
     'access log expired');
like($access, qr{^/disabled 401 disabled - \Q${\ hint_of($key{disabled})}\E$}m,
     'access log disabled');
like($access, qr{^/future 401 not_yet_valid - \Q${\ hint_of($key{future})}\E$}m,
     'access log not yet valid');
like($access, qr{^/unknown 401 unknown - \Q${\ hint_of($key{unknown})}\E$}m,
     'access log unknown');
like($access, qr{^/plain 200 valid plain pla\.\.\.$}m, 'access log plain');
like($access, qr{^/typo 401 malformed - -$}m, 'access log bad checksum');
like($access, qr{^/spaced 401 malformed - -$}m, 'access log malformed');

like($error, rejected('unknown', 'unknown', 'unknown'), 'error log unknown');
like($error, rejected('expired', 'expired', 'expired'), 'error log expired');
like($error, rejected('disabled', 'disabled', 'disabled'),
     'error log disabled');
like($error, rejected('future', 'not_yet_valid', 'future'),
     'error log not yet valid');
like($error, rejected('unknown', 'unknown', 'bearer'),
     'error log unknown bearer');
like($error, malformed('typo'), 'error log bad checksum');
like($error, malformed('spaced'), 'error log malformed');
like($error, qr/request: "GET \/quiet\/typo\?k=\Q${\ substr($key{typo}, 0, 7)}\E\*{34} /,
     'error log masks a mistyped key in the request line');
like($error, qr/request: "GET \/quiet\/unknown\?k=\Q${\ substr($key{unknown}, 0, 7)}\E\*{34} /,
     'error log masks a key in the request line');

# and never a key

my $data = Apikey::Harness::slurp($t->db() . '/data.mdb');

ok(index($data, $hint) >= 0, 'data.mdb read: the hint is stored');

for my $name (sort keys %key) {
    is(found($data, $key{$name}), 0, "no $name key in data.mdb");
    is(found($error, $key{$name}), 0, "no $name key in error log");
    is(found($access, $key{$name}), 0, "no $name key in access log");
}

$t->check_log();

done_testing();

###############################################################################

# the info line for a rejected key: its hint and the status

sub rejected {
    my ($name, $status, $uri) = @_;

    my $msg = 'apikey: key "' . hint_of($key{$name}) . "\" rejected: $status";

    return qr/\[info\] \d+#\d+: \*\d+ \Q$msg\E, .* request: "GET \/$uri /;
}

sub malformed {
    my ($uri) = @_;

    my $msg = 'apikey: malformed key in "header=X-API-Key"';

    return qr/\[info\] \d+#\d+: \*\d+ \Q$msg\E, .* request: "GET \/$uri /;
}

sub hint_of {
    my ($k) = @_;
    return substr($k, 0, 7) . '...';
}

# how many of the key and its secret part without the prefix are in a
# text (a count: a failure must not print the key)

sub found {
    my ($text, $k) = @_;

    my $tail = $k =~ /_([0-9A-Za-z]{38})\z/ ? $1 : substr($k, 6);

    return scalar grep { index($text, $_) >= 0 } $k, $tail;
}
