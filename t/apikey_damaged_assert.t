#!/usr/bin/perl

# Tests nginx, two workers, serving a data.mdb whose damaged pages make
# LMDB fail one of its own assertions, which calls abort() once the
# module's callback returns: inside the module's fault guard the callback
# jumps back instead, the lookup is answered 503, never with a worker
# killed by SIGABRT; the damage is logged with LMDB's message a bounded
# number of times; a location on a healthy database keeps answering; a
# good database swapped in is valid again without a reload.
#
# The damage: a leaf page of the keys tree relabelled a branch page of a
# single node.  mdb_get() descends into it and fails the assertion that
# a branch page of a named database holds two nodes or more, in
# mdb_page_search_root().  (A child of a branch page pointed at a page of
# the ids tree fails an assertion only in a cursor walk, which nginx
# never makes: mdb_get() follows branch pages to any depth and answers
# MDB_NOTFOUND or MDB_CORRUPTED.)

use strict;
use warnings;

use Test::More;

use Time::HiRes qw(sleep time);

use Apikey::Harness qw(write_file scaled);

my $t = Apikey::Harness->new()->require_all();

my $prefix = $t->prefix();
my $good = "$prefix/good";
my $bad = "$prefix/bad";
my $live = "$prefix/live";

# a fixed secret and fixed input: the same pages on every run; a few
# thousand keys, so that the keys tree has branch pages

write_file($t->secret(), ('c' x 64) . "\n");
chmod 0600, $t->secret();

my $n = 3000;
my @keys = map { sprintf('plainkey-%04d', $_) } 1 .. $n;
my $csv = "key,id,subject,created\n"
          . join('', map { sprintf("plainkey-%04d,id-%04d,sub,"
                                   . "2026-01-01T00:00:00Z\n", $_, $_) }
                     1 .. $n);

$t->init_db();
$t->ctl_ok({ input => $csv }, 'import', '-');
$t->ctl_ok('backup', $good);

open my $in, '<:raw', "$good/data.mdb" or die "$good/data.mdb: $!";
my $data = do { local $/; <$in> };
close $in;

my $page = 4096;

# a page header: its number, pad, flags (1 branch, 2 leaf), lower and
# upper; then the offsets of its nodes

sub header {
    my ($pgno) = @_;
    my (undef, undef, $flags, $lower) = unpack('Q<S<S<S<',
                                               substr($data, $pgno * $page,
                                                      16));
    return ($flags, ($lower - 16) >> 1);
}

sub node {
    my ($pgno, $i) = @_;
    my ($off) = unpack('S<', substr($data, $pgno * $page + 16 + 2 * $i, 2));
    return $pgno * $page + $off;
}

# the newest meta page names the main tree, whose leaf names the others

my ($txnid, $main) = (-1, undef);

for my $m (0, 1) {
    my $meta = $m * $page + 16 + 24;
    my ($r) = unpack('Q<', substr($data, $meta + 48 + 40, 8));
    my ($id) = unpack('Q<', substr($data, $meta + 96 + 8, 8));

    ($txnid, $main) = ($id, $r) if $id > $txnid;
}

my %root;
my (undef, $nmain) = header($main);

for my $i (0 .. $nmain - 1) {
    my $b = node($main, $i);
    my ($ksize) = unpack('S<', substr($data, $b + 6, 2));
    my $name = substr($data, $b + 8, $ksize);
    my ($root) = unpack('Q<', substr($data, $b + 8 + $ksize + 40, 8));
    $root{$name} = $root;
}

# the leaf pages of the keys tree, from its branch pages

my (@leaves, @queue);
@queue = ($root{keys}) if defined $root{keys};

while (@queue) {
    my $pgno = shift @queue;
    my ($flags, $nkeys) = header($pgno);

    if ($flags & 0x02) {
        push @leaves, $pgno;
        next;
    }

    next unless $flags & 0x01;

    for my $i (0 .. $nkeys - 1) {
        my ($lo, $hi, $high) = unpack('S<S<S<', substr($data, node($pgno, $i),
                                                       6));
        push @queue, $lo | ($hi << 16) | ($high << 32);
    }
}

note("keys tree root $root{keys}, " . scalar(@leaves) . " leaf pages");

my @dir_st = stat($good);
my @data_st = stat("$good/data.mdb");

sub damage {
    my ($pgno, $dir) = @_;

    # a branch page of one node: flags and lower

    my $copy = $data;
    substr($copy, $pgno * $page + 10, 4) = pack('S<S<', 0x01, 16 + 2);

    mkdir $dir;
    chown -1, $dir_st[5], $dir;
    chmod $dir_st[2] & 07777, $dir;
    unlink "$dir/lock.mdb";

    open my $out, '>:raw', "$dir/data.mdb" or die "$dir/data.mdb: $!";
    print $out $copy;
    close $out;

    chown -1, $data_st[5], "$dir/data.mdb";
    chmod $data_st[2] & 07777, "$dir/data.mdb";
}

# apikeyctl verify of the key fails LMDB's assertion: abort() (before
# apikeyctl had its own callback), or the message

sub asserts {
    my ($key) = @_;

    my ($rc, $out, $err) = $t->ctl({ db => $bad, input => "$key\n" },
                                   'verify', '-');
    return $rc > 128 || $err =~ /Assertion|inconsistent/;
}

# the first leaf page whose damage makes the lookup of some key fail an
# assertion, and a key that is looked up on another page

my ($found, $hit, $clean);

for my $pgno (@leaves[0 .. ($#leaves < 2 ? $#leaves : 2)]) {
    damage($pgno, $bad);

    for my $key (@keys[0 .. 599]) {
        if (asserts($key)) {
            ($found, $hit) = ($pgno, $key);
            last;
        }

        $clean //= $key;
    }

    last if defined $found;
    undef $clean;
}

plan(skip_all => "no damaged page of the keys tree made a lookup fail an "
                 . "assertion in LMDB")
    unless defined $found && defined $clean;

note("page $found damaged; $hit fails an assertion, $clean does not");

symlink($bad, $live) or die "symlink: $!";

$t->write_config(<<"EOF", workers => 2);
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /live {
            apikey on;
            apikey_db $live;
            empty_gif;
        }

        location /ok {
            apikey on;
            apikey_db %%DB%%;
            empty_gif;
        }
    }
EOF

$t->start();

sub status {
    my ($uri, $key) = @_;
    my $r = eval { $t->get($uri, 'X-API-Key' => $key) };
    return $r ? $r->{status} : 0;
}

# the key a few times, on both workers, another key and the healthy
# location between

my (@hit, @bad, $ok_failed);

for my $round (1 .. 10) {
    push @hit, status('/live', $hit);

    my $s = status('/live', $clean);
    push @bad, "$clean: $s" unless $s == 200 || $s == 503;

    $ok_failed++ if status('/ok', $hit) != 200;
}

is(join(' ', grep { $_ != 503 } @hit), '', 'damaged: the key fails closed');
is(join(', ', @bad), '', 'damaged: a key on another page 200 or 503');
ok(!$ok_failed, 'the healthy database answers 200 throughout');

my $log = $t->error_log();

my $logged = qr/\Q"$live\/data.mdb" is damaged: LMDB found it inconsistent (\E
                mdb\.c:\d+:\ Assertion\ '[^']+'\ failed\ in\ \w+\(\)
                \Q) while reading it; run "apikeyctl -d $live check", \E
                \Qrestore a backup into a new directory and swap it in\E/x;
my $lines = () = $log =~ /$logged/g;

note($1) if $log =~ /^(.*$logged.*)$/m;

ok($lines >= 1, 'damaged: logged with the message of LMDB');
ok($lines <= 4, "damaged: logged once per worker, not per request ($lines)");
unlike($log, qr/exited on signal/, 'damaged: no worker died');
unlike($log, qr/\Q$_\E/, "no key in the log: $_") for $hit, $clean;

# a good database swapped in: valid again without a reload

unlink "$live.new";
symlink($good, "$live.new") or die "symlink: $!";
rename("$live.new", $live) or die "rename: $!";

sub settles {
    my ($key, $status) = @_;

    my $end = time() + scaled(10);

    while (time() < $end) {
        my $ok = grep { status('/live', $key) == $status } 1 .. 10;
        return 1 if $ok == 10;
        sleep 0.2;
    }

    return 0;
}

ok(settles($hit, 200), 'good database: the key valid again without reload');
is(status('/live', $clean), 200, 'good database: the other key valid');

my $end = time() + scaled(10);

while (time() < $end
       && $t->error_log() !~ /apikey database "\Q$live\E" is usable again/)
{
    sleep 0.2;
}

like($t->error_log(), qr/apikey database "\Q$live\E" is usable again/,
     'usable again: logged');

$t->stop();

$t->check_log();

done_testing();
