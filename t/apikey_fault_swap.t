#!/usr/bin/perl

# Tests whole directories swapped in through a symbolic link while nginx
# serves under load (issue 9): one made with the same secret and other
# keys is served at once, without a 503; one made with another secret is
# not usable (503, never 200), logged once a worker, and the link swapped
# back recovers without a reload; then data.mdb alone replaced by one
# made with another secret, until a whole directory restored from a
# backup is swapped in.  The unprotected location answers 200 throughout.
# Four workers (t/apikey_fault_files.t has two; TEST_APIKEY_WORKERS=N
# sets the number for both).

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled write_file);
use Apikey::Fault;

my $t = Apikey::Harness->new()->require_all();

my $dir = $t->prefix();
my $link = "$dir/live";
my $workers = $ENV{TEST_APIKEY_WORKERS} // 4;

sub point {
    my ($target) = @_;

    unlink "$link.new";
    symlink($target, "$link.new") or die "symlink: $!";
    rename("$link.new", $link) or die "rename: $!";
}

point($t->db());

my $f = Apikey::Fault->new($t, workers => $workers, db => $link);
my $load = $f->load();

# the same secret, other keys: N valid, V unknown, E expired as before

my $new = "$dir/db-new";
my %n;

$t->init_db({ db => $new });
chomp($n{$_} = $t->ctl_ok({ db => $new }, 'gen', '--id', $_)) for qw(N1 N2 N3);

$t->ctl_ok({ db => $new,
             input => "id,key,expires\n"
                      . join('', map { "E$_," . $f->key("E$_")
                                       . ",2020-01-01T00:00:00Z\n" } 1 .. 2) },
           'import', '-');

$load->key($_, $n{$_}, 'swapped', 401) for sort keys %n;
$t->ctl_ok({ db => $new }, 'backup', "$dir/backup");

my $offset = length $t->error_log();

$load->change({ (map { $_ => 200 } keys %n), (map { ("V$_" => 401) } 1 .. 4) },
              sub {
                  point($new);

                  # the workers look at the files about once a second

                  my $end = time() + scaled(4);
                  sleep 0.1 while time() < $end;
              }, name => 'swap');

$load->wait_requests(500);

my @lines = grep { /^\S+ \S+ \[(?!info|debug)\w+\] .*apikey/ }
            split /\n/, substr($t->error_log(), $offset);

diag("swapped: " . s/, client: .*//r) for @lines;

is(join("\n", grep { !/\[notice\]\ \d+\#\d+:\ (?:\*\d+\ )?apikey\ database
                         \ "\Q$link\E"\ was\ replaced,\ reopening
                         (?:,\ client:\ .*)?$/x } @lines), '',
   'swapped: a notice, nothing else');
cmp_ok(scalar @lines, '<=', $workers, 'swapped: a line a worker at most');

# another secret

my $other = "$dir/db-other";
my $secret = "$dir/other.secret";

write_file($secret, join('', map { sprintf '%02x', int rand 256 } 1 .. 32)
                    . "\n");
$t->init_db({ db => $other, secret => $secret });
$t->ctl_ok({ db => $other, secret => $secret }, 'gen', '--id', 'N1');

$f->outage(
    name => 'another secret',
    notices => 2,
    log => [ qr/"\Q$link\E" is not usable: database was made with another/
             . qr/ secret \(secret "\Q${\$t->secret()}\E"\)/ ],
    break => sub { point($other) },
    fix => sub { point($new) });

# data.mdb alone replaced by one made with another secret: a whole
# directory restored from a backup swapped in.  Three causes a worker at
# most: the file replaced, seen by its check; then at each reopening the
# lock file does not belong to it while another worker still has the
# lock file open (LMDB makes it agree only when no process has it), and
# the other secret once it agrees

$t->ctl_ok({ db => $other, secret => $secret }, 'backup', "$dir/db-copy");
$t->no_check("$dir/db-copy");

$f->outage(
    name => 'data.mdb of another secret',
    errors => 3,
    log => [ qr{\Q"$link" is not usable: "$link/data.mdb" was replaced\E}
             . qr/ on its own while in use; swap in a whole new directory/
             . qr/ instead/,
             qr/"\Q$link\E" is not usable: database was made with another/
             . qr/ secret/ ],
    also => [ qr/"\Q$link\E" is not usable: lock.mdb does not belong to/
              . qr/ data.mdb/ ],
    break => sub {
        rename("$dir/db-copy/data.mdb", "$new/data.mdb") or die "rename: $!";
    },
    fix => sub {
        $t->ctl_ok({ db => "$dir/backup" }, 'backup', "$dir/db-restored");
        point("$dir/db-restored");
    });

$t->no_check($new);

$f->finish();

$t->check_log();

done_testing();
