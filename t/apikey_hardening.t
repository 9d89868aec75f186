#!/usr/bin/perl

# Tests smaller hardening points: a warning for a secret file others can
# read; an empty key header is a malformed key, the next source is not
# looked at; a database made with another secret and a corrupt record
# give 503 and one log line per cause, not one per request.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_all();

my $python = '/usr/bin/python3';

$t->init_db();

my $prefix = $t->prefix();
my $db = $t->db();
my $key = $t->gen('--id', 'alice');

symlink($db, "$prefix/db-link") or die "symlink: $!";
write_file("$prefix/other.secret",
           join('', map { sprintf '%02x', $_ } 1 .. 32) . "\n");

$t->write_config(<<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;

        apikey_secret %%SECRET%%;
        apikey_db %%DB%%;

        location / {
            apikey on;
            add_header X-Status $apikey_status always;
            empty_gif;
        }

        location /other {
            apikey on;
            apikey_db %%PREFIX%%/db-link;
            apikey_secret %%PREFIX%%/other.secret;
            empty_gif;
        }
    }
EOF

# the secret file's mode

my ($rc, $out) = $t->nginx_test();
is($rc, 0, 'nginx -t');
unlike($out, qr/accessible by group or others/, 'no warning for 0600');

# apikey_db "" would quietly mean the default path

{
    my $conf = Apikey::Harness::slurp("$prefix/nginx.conf");
    (my $bad = $conf) =~ s{apikey_db \Q$db\E;}{apikey_db "";};
    write_file("$prefix/nginx.conf", $bad);
    ($rc, $out) = $t->nginx_test();
    isnt($rc, 0, 'nginx -t refuses apikey_db ""');
    like($out, qr/\[emerg\] invalid value "" in /, 'apikey_db "" message');
    write_file("$prefix/nginx.conf", $conf);
}

chmod 0640, $t->secret();
($rc, $out) = $t->nginx_test();
is($rc, 0, 'nginx -t with a secret of mode 0640');
my $warn = qq{[warn] apikey secret "$prefix/apikey.secret" is accessible }
           . qq{by group or others (mode 0640), make it 0600};
like($out, qr/\Q$warn\E/, 'warning for 0640');
chmod 0600, $t->secret();

$t->start();

# an empty X-API-Key header: malformed, a Bearer key sent alongside is
# not looked at (the first source present wins, empty or not)

my $r = $t->get('/', 'X-API-Key' => '', 'Authorization' => "Bearer $key");
is($r->{status}, 401, 'empty X-API-Key with a valid Bearer: 401');
is_deeply($r->{headers}{'x-status'}, ['malformed'],
          'empty X-API-Key is malformed');

$r = $t->get('/', 'Authorization' => "Bearer $key");
is($r->{status}, 200, 'the same Bearer alone: 200');

# optional whitespace around a value, a tab as well as a space, is not
# part of the key, in a key header as in Authorization

is($t->get('/', 'X-API-Key' => "$key\t")->{status}, 200,
   'X-API-Key with a trailing tab');
is($t->get('/', 'Authorization' => "Bearer $key\t")->{status}, 200,
   'Bearer with a trailing tab');

# made with another secret: 503, one line however many requests

for (1 .. 20) {
    $r = $t->get('/other', 'X-API-Key' => $key);
}

is($r->{status}, 503, 'another secret: 503');
is($t->get('/', 'X-API-Key' => $key)->{status}, 200,
   'the right secret still works');

my @lines = $t->error_log() =~ /^.*made with another secret.*$/mg;
ok(@lines >= 1 && @lines <= 2, 'another secret logged once per cause')
    or diag(join "\n", @lines);

# a corrupt record: 503, one line

SKIP: {
    skip "no $python", 3 unless -x $python;
    skip 'no mdb_load (lmdb-utils)', 3 unless -x '/usr/bin/mdb_load';

    my $bad = 'corrupt-record-key-0123';

    write_file("$prefix/py.key", $bad);

    my $hash = `$python -c '
import hashlib, sys
secret = bytes.fromhex(open(sys.argv[1]).read().strip())
key = open(sys.argv[2], "rb").read()
print(hashlib.blake2b(key, key=secret, digest_size=32).hexdigest())
' $prefix/apikey.secret $prefix/py.key`;
    chomp $hash;

    open my $fh, '|-', "/usr/bin/mdb_load -s keys $db" or die "mdb_load: $!";
    print $fh "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
              . " $hash\n 01ff00\nDATA=END\n";
    close $fh;

    # damaged on purpose: "apikeyctl check" at the end would fail

    $t->no_check();

    for (1 .. 10) {
        $r = $t->get('/', 'X-API-Key' => $bad);
    }

    is($r->{status}, 503, 'corrupt record: 503');
    is($t->get('/', 'X-API-Key' => $key)->{status}, 200,
       'other keys still work');

    @lines = $t->error_log() =~ /^.*lookup failed.*$/mg;
    is(scalar @lines, 1, 'corrupt record logged once') or diag(join "\n", @lines);
}

$t->stop();

unlike($t->error_log(), qr/\Q$key\E/, 'no key in the error log');

$t->check_log();

done_testing();
