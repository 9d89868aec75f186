#!/usr/bin/perl

# Tests the database made unusable while nginx serves under load (issue
# 9): its directory deleted, then a backup moved into place; its
# directory, then its files, made unreadable to the workers, then their
# modes restored.  The protected location answers 503 while it is not
# usable (never 200), the unprotected one 200 throughout, each cause is
# logged once a worker, not once a request, and the workers recover by
# themselves, without a reload.

use strict;
use warnings;

use Test::More;

use Apikey::Harness;
use Apikey::Fault;

my $t = Apikey::Harness->new()->require_all();

my $dir = $t->prefix();
my $db = $t->db();
my $workers = $ENV{TEST_APIKEY_WORKERS} // 2;

my $f = Apikey::Fault->new($t, workers => $workers);

$t->ctl_ok('backup', "$dir/backup");

# the directory deleted, a backup of it moved into place; rm -rf takes
# the files one at a time: a worker may see the lock file gone first,
# then the data file, two causes

$f->outage(
    name => 'deleted',
    errors => 2,
    log => [ qr{\Q"$db" is not usable: stat() "$db/\E(?:data|lock)\.mdb}
             . qr{\Q" failed (2: No such file or directory)\E} ],
    break => sub { system('rm', '-rf', $db) == 0 or die "rm: $?" },
    fix => sub {
        $t->ctl_ok({ db => "$dir/backup" }, 'backup', "$dir/db.new");
        rename("$dir/db.new", $db) or die "rename: $!";
    });

# unreadable: the workers run as nobody when the tests run as root (as
# the test user otherwise, the owner of the files)

SKIP: {
    skip 'the workers run as the owner of the files unless the tests run'
         . ' as root', 2 if $> != 0;

    # the directory unreadable

    $f->outage(
        name => 'directory unreadable',
        log => [ qr{\Q"$db" is not usable: stat() "$db/data.mdb"\E}
                 . qr{\Q failed (13: Permission denied)\E} ],
        break => sub { chmod 0, $db or die "chmod: $!" },
        fix => sub { chmod 02750, $db or die "chmod: $!" });

    # its files unreadable

    $f->outage(
        name => 'files unreadable',
        log => [ qr{\Q"$db" is not usable: access() "$db/data.mdb"\E}
                 . qr{\Q failed (13: Permission denied)\E} ],
        break => sub {
            chmod 0, "$db/data.mdb", "$db/lock.mdb" or die "chmod: $!";
        },
        fix => sub {

            # data.mdb last: the worker that looks in between still
            # finds the same cause, data.mdb unreadable, not another

            chmod 0660, "$db/lock.mdb" or die "chmod: $!";
            chmod 0640, "$db/data.mdb" or die "chmod: $!";
        });
}

$f->finish();

$t->check_log();

done_testing();
