#!/usr/bin/perl

# Tests what restore says before it is trusted: the keys that come back
# (a key revoked since the backup is valid again), the keys whose record
# changes (a key disabled since is enabled again, another expiry) and
# the keys removed, by counts and by ids, at most 20 named in each list;
# --dry-run checks everything, says the same and changes nothing, and
# refuses what restore refuses.  A secret file that is not the
# database's is named; paths and ids are printed escaped.

use strict;
use warnings;

use Test::More;

use Cwd qw(abs_path);

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $dir = abs_path($t->prefix());
my $db = $t->db();

my ($rc, $out, $err);

# check is built by a colleague: its assertion is skipped only while the
# stub is there

sub check_db {
    my ($name, @opts) = @_;

    my ($rc, $out, $err) = $t->ctl(@opts, 'check');

    SKIP: {
        skip 'apikeyctl check is not built yet', 1
            if $err =~ /not built yet/;
        is($rc, 0, "check: $name") or diag($out . $err);
    }
}

sub generation {
    return $t->ctl_ok('stats', '--format', 'json') =~ /"generation":\s*(\d+)/
           ? $1 : '';
}

sub valid {
    my ($key) = @_;

    return ($t->ctl({ input => "$key\n" }, 'verify', '-'))[0] == 0;
}

$t->init_db();

# the red team's case: a leaked key revoked, a key disabled, then the
# backup from before restored

my %key;
$key{$_} = $t->gen('--id', $_) for qw(good leaked same exp);

$t->ctl_ok('backup', "$dir/B");
my $saved = $t->ctl_ok('export');

$t->ctl_ok('revoke', 'leaked');
$t->ctl_ok('disable', 'good');
$t->ctl_ok('expire', 'exp', '--at', '2030-01-01T00:00:00Z');
$key{new} = $t->gen('--id', 'new');

my $live = $t->ctl_ok('export');
my $gen = generation();

my $report = <<'EOF';
 4 keys from "DIR/B" (4 keys before): 1 unchanged, 1 back, 2 changed, 1 removed
1 key back (in the backup, not in the live database: revoked since the backup?): "leaked"
2 keys changed (1 enabled again, 1 another expiry): CHANGED
1 key removed (in the live database, not in the backup): "new"
EOF
$report =~ s/DIR/$dir/;

# the keys in the order of their hashes: either

sub same_report {
    my ($got, $want, $name) = @_;

    my $either = join('|', map { quotemeta }
                           '"exp" (another expiry), "good" (enabled again)',
                           '"good" (enabled again), "exp" (another expiry)');
    my $re = join('(?:' . $either . ')', map { quotemeta }
                                         split /CHANGED/, $want, -1);

    like($got, qr/^$re\z/, $name);
}

($rc, $out, $err) = $t->ctl('restore', '--dry-run', "$dir/B");
is($rc, 0, 'dry run: exit code') or diag($err);
same_report($out, "would restore$report" . "nothing was changed (--dry-run)\n",
            'dry run: what would come back, change and go');
is($err, '', 'dry run: stderr');
is($t->ctl_ok('export'), $live, 'dry run: nothing changed');
is(generation(), $gen, 'dry run: no commit');
ok(!valid($key{leaked}), 'dry run: the revoked key is still revoked');

($rc, $out, $err) = $t->ctl('restore', "$dir/B");
is($rc, 0, 'restore: exit code') or diag($err);
same_report($out, "restored$report",
            'restore: what came back, changed and went');
is($err, '', 'restore: stderr');
is($t->ctl_ok('export'), $saved, 'restore: the backup\'s keys');
ok(valid($key{leaked}) && valid($key{good}) && !valid($key{new}),
   'restore: as reported');
check_db('after restore');

# nothing to change: counts only

($rc, $out, $err) = $t->ctl('restore', "$dir/B");
is($out, qq{restored 4 keys from "$dir/B" (4 keys before): 4 unchanged, }
         . qq{0 back, 0 changed, 0 removed\n},
   'restore of what is there: counts only');

# one key: "1 key", not "1 keys"

$t->init_db({ db => "$dir/one" });
$t->ctl_ok({ db => "$dir/one" }, 'gen', '--id', 'only');
($rc, $out, $err) = $t->ctl({ db => "$dir/one" }, 'backup', "$dir/B1");
like($out, qr/^backed up 1 key to "\Q$dir\E\/B1" \(\d+ bytes\)\n\z/,
     'backup of one key: singular');
$t->ctl_ok({ db => "$dir/one" }, 'revoke', 'only');
$t->ctl_ok({ db => "$dir/one" }, 'gen', '--id', 'other');
($rc, $out, $err) = $t->ctl({ db => "$dir/one" }, 'restore', "$dir/B1");
is($rc, 3, 'one key removed of one: needs --force');
like($err, qr/would remove 1 of the 1 key, more than half/,
     'one key removed of one: singular');
($rc, $out, $err) = $t->ctl({ db => "$dir/one" }, 'restore', '--force',
                            "$dir/B1");
like($out, qr/^restored 1 key from "\Q$dir\E\/B1" \(1 key before\): 0 unchanged, 1 back, 0 changed, 1 removed\n/,
     'restore of one key: singular');
check_db('after restore of one key', { db => "$dir/one" });

# many keys: 20 named, then "and N more"

$t->ctl_ok({ input => "id,key\n" . join('', map {
                 sprintf("m%02d,report-key-%02d-0123456789abcdef\n", $_, $_)
             } 1 .. 25) }, 'import', '-');
$t->ctl_ok('backup', "$dir/B25");
$t->ctl_ok({ input => join('', map { sprintf("m%02d\n", $_) } 1 .. 25) },
           'revoke', '-');

($rc, $out, $err) = $t->ctl('restore', '--dry-run', "$dir/B25");
is($rc, 0, 'dry run of 25 keys back: exit code') or diag($err);
like($out, qr/^25 keys back \(in the backup, not in the live database: revoked since the backup\?\): ("m\d\d", ){19}"m\d\d" and 5 more$/m,
     'dry run of 25 keys back: 20 named, and 5 more');

# --dry-run refuses what restore refuses, after saying why

$t->ctl_ok('revoke', 'good', 'leaked', 'same', 'exp');
$t->ctl_ok({ input => "id,key\n" . join('', map {
                 sprintf("x%02d,extra-key-%02d-0123456789abcdef\n", $_, $_)
             } 1 .. 5) }, 'import', '-');
$live = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl('restore', '--dry-run', "$dir/B");
is($rc, 3, 'dry run removing more than half: exit code');
like($out, qr/^would restore 4 keys from "\Q$dir\E\/B" \(5 keys before\): 0 unchanged, 4 back, 0 changed, 5 removed\n/,
     'dry run removing more than half: the report');
unlike($out, qr/nothing was changed \(--dry-run\)/,
       'dry run removing more than half: not said to pass');
like($err, qr/^apikeyctl: restore: restoring "\Q$dir\E\/B" would remove 5 of the 5 keys, more than half; nothing was changed \(add --force to do it\)\n\z/,
     'dry run removing more than half: refused');

($rc, $out, $err) = $t->ctl('restore', '--dry-run', '--force', "$dir/B");
is($rc, 0, 'dry run --force: exit code') or diag($err);
like($out, qr/^5 keys removed \(in the live database, not in the backup\): ("x0\d", ){4}"x0\d"\nnothing was changed \(--dry-run\)\n\z/m,
     'dry run --force: the report');
is($t->ctl_ok('export'), $live, 'dry runs: nothing changed');

# an empty backup: --dry-run says so, exit 3

$t->init_db({ db => "$dir/empty" });
$t->ctl_ok({ db => "$dir/empty" }, 'backup', "$dir/B0");
($rc, $out, $err) = $t->ctl('restore', '--dry-run', "$dir/B0");
is($rc, 3, 'dry run of an empty backup: exit code');
like($err, qr/holds no keys: restoring it would remove every key/,
     'dry run of an empty backup: message');

# a SRC that does not pass the checks: exit 1 in a dry run too

($rc, $out, $err) = $t->ctl('restore', '--dry-run', "$dir/nope");
is($rc, 1, 'dry run of a missing SRC: exit code');
like($err, qr/No such file or directory\napikeyctl: restore: nothing was changed\n\z/,
     'dry run of a missing SRC: message');
is($out, '', 'dry run of a missing SRC: no output');

# the secret file given is named: the live database's, or the copy's

write_file("$dir/other.secret", ('ab' x 32) . "\n");
chmod 0600, "$dir/other.secret";

($rc, $out, $err) = $t->ctl({ secret => "$dir/other.secret" }, 'restore',
                            '--dry-run', "$dir/B");
is($rc, 1, 'another secret file: exit code');
like($err, qr/^apikeyctl: restore: the live database "\Q$db\E" was made with another secret than the one in the secret file "\Q$dir\E\/other.secret" \(-s\); nothing was changed\n\z/,
     'another secret file: named');

$t->init_db({ db => "$dir/foreign", secret => "$dir/other.secret" });
$t->ctl_ok({ db => "$dir/foreign", secret => "$dir/other.secret" }, 'gen');

($rc, $out, $err) = $t->ctl('restore', "$dir/foreign");
is($rc, 1, 'a copy of another secret: exit code');
like($err, qr/^apikeyctl: restore: "\Q$dir\E\/foreign" was made with another secret than the one in the secret file "\Q${\ $t->secret()}\E" \(-s\), which the live database was made with: a backup of another database\?\napikeyctl: restore: nothing was changed\n\z/,
     'a copy of another secret: the secret file named');
is($t->ctl_ok('export'), $live, 'another secret: nothing changed');

# paths with control characters: escaped in every message

my $nl = "$dir/new\nline";

($rc, $out, $err) = $t->ctl('backup', $nl);
is($rc, 0, 'backup to a path with a newline') or diag($err);
is($out =~ tr/\n//, 1, 'backup to a path with a newline: one line');
like($out, qr/^backed up 5 keys to "\Q$dir\E\/new\\x0aline" /,
     'backup to a path with a newline: escaped');

($rc, $out, $err) = $t->ctl('backup', $nl);
like($err, qr/^apikeyctl: backup: "\Q$dir\E\/new\\x0aline" holds a database already;[^\n]*\n\z/,
     'backup refused, a path with a newline: escaped');

($rc, $out, $err) = $t->ctl('restore', '--dry-run', '--force', $nl);
is($rc, 0, 'restore from a path with a newline') or diag($err);
like($out, qr/^would restore 5 keys from "\Q$dir\E\/new\\x0aline" /,
     'restore from a path with a newline: escaped');

($rc, $out, $err) = $t->ctl('restore', "$dir/esc\e[2Jape");
like($err, qr/^apikeyctl: restore: "\Q$dir\E\/esc\\x1b\[2Jape": No such file/,
     'restore from a missing path with an escape: escaped');

($rc, $out, $err) = $t->ctl('restore', "$dir/B", "$dir/tab\there");
like($err, qr/unexpected argument "\Q$dir\E\/tab\\x09here"/,
     'restore: an extra argument with a tab: escaped');

for my $p ("$dir/a\nb/c", "$dir/x\ry/z") {
    ($rc, $out, $err) = $t->ctl('backup', $p);
    is($err =~ tr/\n\r//, 1, 'backup refused: one line of error')
        or diag($err);
}

# the restored database is whole

check_db('at the end');

done_testing();
