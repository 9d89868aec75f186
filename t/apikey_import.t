#!/usr/bin/perl

# Tests for apikeyctl import while nginx serves: 100,000 keys in one
# transaction with a client running all along, a bad line that leaves
# the database untouched, --skip-invalid, --dry-run, --replace, JSONL.

use strict;
use warnings;

use Test::More;

use POSIX qw(_exit);
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(http_get);

my $t = Apikey::Harness->new()->require_all();

plan(skip_all => 'no mdb_dump (lmdb-utils)') unless -x '/usr/bin/mdb_dump';

my $prefix = $t->prefix();

$t->init_db();

my $existing = $t->gen('--id', 'existing');
my $unknown = 'unknown-' . random_hex();

$t->write_config(<<'EOF');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
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

$t->start();

my ($rc, $out, $err, $r);

# 100,000 keys while a client keeps asking

my $n = 100_000;
my @keys = map { sprintf 'imp-%08d-%s', $_, random_hex() } 1 .. $n;

write_csv("$prefix/big.csv", "key,id\n",
          map { "$keys[$_ - 1],imp$_\n" } 1 .. $n);

my $watched = $keys[-1];
my $ready = "$prefix/client.ready";
my $done = "$prefix/client.done";

pipe(my $from_client, my $to_client) or die "pipe: $!";

my $client = fork() // die "fork: $!";

if ($client == 0) {

    # no die past here: it would stop nginx and clean up in the child

    close $from_client;
    print $to_client eval { client($ready, $done) } // 'failed=1', "\n";
    close $to_client;
    _exit(0);
}

close $to_client;

for (1 .. 100) {
    last if -e $ready;
    sleep 0.05;
}

ok(-e $ready, 'client running before import');

my $start = time();
($rc, $out, $err) = $t->ctl('import', "$prefix/big.csv");
my $elapsed = time() - $start;

touch($done);

my %c = map { split /=/ } split ' ', scalar <$from_client> // '';
waitpid($client, 0);

note(sprintf 'import of %d keys: %.2f s, %d client rounds', $n, $elapsed,
     $c{rounds} // 0);

is($rc, 0, 'import exit code');
is($out, "imported 100000 keys: 100000 added, 0 updated, 0 unchanged, "
   . "0 removed, 0 rejected\n", 'import summary');
is($err, '', 'import stderr: nothing, the summary is on stdout');

ok(($c{rounds} // 0) > 1, 'client rounds during import');
is($c{existing_ok}, $c{rounds}, 'existing key always 200');
is($c{unknown_ok}, $c{rounds}, 'unknown key always 401');
is($c{imported_other}, 0, 'imported key only 200 or 401');
is($c{imported_401} + $c{imported_200}, $c{rounds},
   'imported key 200 or 401');
is($c{imported_regress}, 0, 'imported key stays 200');
ok($c{imported_401} >= 1, 'imported key 401 before import');
ok($c{imported_200} >= 1, 'imported key 200 after import');

for my $i (1, $n / 2, $n) {
    $r = $t->get('/', 'X-API-Key' => $keys[$i - 1]);
    is($r->{status}, 200, "imported row $i 200");
}

$r = $t->get('/', 'X-API-Key' => $existing);
is($r->{status}, 200, 'existing key 200 after import');

# a bad line in the middle leaves the database untouched

my @more = map { sprintf 'more-%08d-%s', $_, random_hex() } 1 .. 10_000;

write_csv("$prefix/bad-expires.csv", "key,id,expires\n",
          map { "$more[$_ - 1],more$_," . ($_ == 5000 ? 'tomorrow' : '')
                . "\n" } 1 .. 10_000);

my $before = dump_db();

($rc, $out, $err) = $t->ctl('import', "$prefix/bad-expires.csv");
is($rc, 3, 'bad expires exit code');
like($err, qr/^apikeyctl: import: line 5001: invalid expires "tomorrow" \(/m,
     'bad expires names line 5001');
is($out, '', 'bad expires stdout');
ok(dump_db() eq $before, 'bad expires leaves database unchanged');

$r = $t->get('/', 'X-API-Key' => $more[0]);
is($r->{status}, 401, 'bad expires imported nothing');

my $malformed = 'bad key ' . random_hex();

write_csv("$prefix/bad-key.csv", "key,id\n",
          map { ($_ == 5000 ? $malformed : $more[$_ - 1]) . ",more$_\n" }
          1 .. 10_000);

($rc, $out, $err) = $t->ctl('import', "$prefix/bad-key.csv");
is($rc, 3, 'malformed key exit code');
like($err, qr/^\Qapikeyctl: import: line 5001: key is malformed (8 to 256\E
              \Q printable ASCII characters, no spaces)\E$/mx,
     'malformed key names line 5001');
is(index($err, $malformed), -1, 'malformed key not in message');
ok(dump_db() eq $before, 'malformed key leaves database unchanged');

# --skip-invalid imports the rest

($rc, $out, $err) = $t->ctl('import', '--skip-invalid',
                            "$prefix/bad-expires.csv");
is($rc, 0, 'skip invalid exit code');
is($out, "imported 9999 keys: 9999 added, 0 updated, 0 unchanged, "
   . "0 removed, 1 rejected\n", 'skip invalid summary');
like($err, qr/^apikeyctl: .*skipped.*line 5001: invalid expires "tomorrow" \(/m,
     'skip invalid reports line 5001');

$r = $t->get('/', 'X-API-Key' => $more[0]);
is($r->{status}, 200, 'skip invalid first row 200');
$r = $t->get('/', 'X-API-Key' => $more[4999]);
is($r->{status}, 401, 'skip invalid bad row 401');
$r = $t->get('/', 'X-API-Key' => $more[5000]);
is($r->{status}, 200, 'skip invalid row after bad row 200');
$r = $t->get('/', 'X-API-Key' => $more[-1]);
is($r->{status}, 200, 'skip invalid last row 200');

# --dry-run changes nothing

my @dry = map { sprintf 'dry-%08d-%s', $_, random_hex() } 1 .. 100;
write_csv("$prefix/dry.csv", "key\n", map { "$_\n" } @dry);

$before = dump_db();

($rc, $out, $err) = $t->ctl('import', '--dry-run', "$prefix/dry.csv");
is($rc, 0, 'dry run exit code');
like($out, qr/^dry run: /, 'dry run summary');
ok(dump_db() eq $before, 'dry run leaves database unchanged');

$r = $t->get('/', 'X-API-Key' => $dry[0]);
is($r->{status}, 401, 'dry run key 401');

# --replace: the database equals the file

my @rep = map { sprintf 'rep-%08d-%s', $_, random_hex() } 1 .. 2;
write_csv("$prefix/replace.csv", "key,id\n", "$existing,existing\n",
          "$rep[0],rep1\n", "$rep[1],rep2\n");

$before = dump_db();

($rc, $out, $err) = $t->ctl('import', '--replace', "$prefix/replace.csv");
is($rc, 3, 'replace of most keys without --force exit code');
is($err, "apikeyctl: import: --replace would remove 109999 of the 110000 "
   . "keys, more than half; nothing was changed (add --force to do it)\n",
   'replace of most keys without --force message');
ok(dump_db() eq $before, 'replace without --force leaves database unchanged');

($rc, $out, $err) = $t->ctl('import', '--replace', '--force',
                            "$prefix/replace.csv");
is($rc, 0, 'replace exit code');
like($out, qr/^imported 3 keys: /, 'replace summary');

$r = $t->get('/', 'X-API-Key' => $keys[0]);
is($r->{status}, 401, 'replace removes a key not in the file');
$r = $t->get('/', 'X-API-Key' => $more[0]);
is($r->{status}, 401, 'replace removes another key not in the file');
$r = $t->get('/', 'X-API-Key' => $existing);
is($r->{status}, 200, 'replace keeps a key in the file');
$r = $t->get('/', 'X-API-Key' => $rep[1]);
is($r->{status}, 200, 'replace adds a key of the file');

($rc, $out, $err) = $t->ctl('list', '--format', 'csv');
is($rc, 0, 'list after replace exit code');
is(join(',', sort map { (split /,/)[0] =~ s/^"(.*)"\z/$1/r }
                 (split /\n/, $out)[1 .. 3]),
   'existing,rep1,rep2', 'list after replace ids');
is(scalar(() = $out =~ /\n/g), 4, 'list after replace rows');

# JSONL

my @json = map { sprintf 'json-%08d-%s', $_, random_hex() } 1 .. 2;
write_csv("$prefix/extra.jsonl",
          qq({"key":"$json[0]","id":"json1","scopes":["read","write"],)
          . qq("plan":"gold"}\n),
          "\n",
          qq({"key":"$json[1]","id":"json2","disabled":true}\n));

($rc, $out, $err) = $t->ctl('import', "$prefix/extra.jsonl");
is($rc, 0, 'jsonl exit code');
is($out, "imported 2 keys: 2 added, 0 updated, 0 unchanged, 0 removed, "
   . "0 rejected\n", 'jsonl summary');

$r = $t->get('/', 'X-API-Key' => $json[0]);
is($r->{status}, 200, 'jsonl key 200');
$r = $t->get('/', 'X-API-Key' => $json[1]);
is($r->{status}, 401, 'jsonl disabled key 401');

($rc, $out, $err) = $t->ctl('show', 'json1');
like($out, qr/^scopes: read,write$/m, 'jsonl scopes array');
like($out, qr/^plan: gold$/m, 'jsonl plan');

# any printable ASCII of 8 to 256 characters, quoted where CSV needs it

my @odd = ('8chars!!', 'o' x 256,
           q{odd,"quoted"!#$%&'()*+-./:;<=>?@[\]^_`{|}~});

write_csv("$prefix/odd.csv", "id,key\n", "odd1,$odd[0]\n", "odd2,$odd[1]\n",
          'odd3,"' . ($odd[2] =~ s/"/""/gr) . "\"\n");

($rc, $out, $err) = $t->ctl('import', "$prefix/odd.csv");
is($rc, 0, 'odd keys exit code');
is($out, "imported 3 keys: 3 added, 0 updated, 0 unchanged, 0 removed, "
   . "0 rejected\n", 'odd keys summary');

for my $i (0 .. 2) {
    $r = $t->get('/', 'X-API-Key' => $odd[$i]);
    is($r->{status}, 200, "odd key $i 200");
}

write_csv("$prefix/long.csv", "key\n", 'l' x 257 . "\n");

($rc, $out, $err) = $t->ctl('import', "$prefix/long.csv");
is($rc, 3, 'key of 257 characters exit code');
like($err, qr/^apikeyctl: import: line 2: key is malformed /m,
     'key of 257 characters is malformed');

$t->stop();

$t->check_log();

done_testing();

###############################################################################

# the client: existing key, unknown key, watched imported key, in turn,
# until the import is done (one last round after that) or 60 seconds

sub client {
    my ($ready, $done) = @_;

    my %c = map { $_ => 0 } qw(rounds existing_ok unknown_ok imported_200
                               imported_401 imported_other imported_regress);
    my $end = time() + 60;
    my $seen = 0;

    while (1) {
        my $last = -e $done || time() > $end;

        $c{existing_ok}++ if status($existing) == 200;
        $c{unknown_ok}++ if status($unknown) == 401;

        my $s = status($watched);

        if ($s == 200) {
            $c{imported_200}++;
            $seen = 1;

        } elsif ($s == 401) {
            $c{imported_401}++;
            $c{imported_regress}++ if $seen;

        } else {
            $c{imported_other}++;
        }

        $c{rounds}++;

        touch($ready) if $c{rounds} == 1;

        last if $last;
    }

    return join ' ', map { "$_=$c{$_}" } sort keys %c;
}

sub status {
    my ($key) = @_;

    my $r = eval { http_get($t->port(0), '/', 'X-API-Key' => $key) };

    return $r ? $r->{status} : -1;
}

sub dump_db {
    my $db = $t->db();
    my $dump = `/usr/bin/mdb_dump -a $db`;
    die "mdb_dump failed: $?" if $?;
    return $dump;
}

sub write_csv {
    my ($file, @lines) = @_;

    open my $fh, '>', $file or die "$file: $!";
    print $fh @lines;
    close $fh;
}

sub touch {
    open my $fh, '>', $_[0] or die "$_[0]: $!";
    close $fh;
}

sub random_hex {
    return sprintf '%08x%08x', int rand 2**32, int rand 2**32;
}
