#!/usr/bin/perl

# Tests that apikeyctl never shows or stores a generated key anywhere but
# as a key: a key in another import column or field, a key given where an
# id or an option value belongs, a key as a command; each is an error
# that names the place and not the value, and nothing is stored.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $prefix = $t->prefix();

$t->init_db();

my $key = $t->gen('--id', 'owner');
my $other = $t->gen('--id', 'other');
my $plain = sprintf 'plain-%08x%08x', int rand 2**32, int rand 2**32;

my ($rc, $out, $err);

my $export = $t->ctl_ok('export');

sub no_key {
    my ($what, @texts) = @_;

    is(scalar(grep { index($_, $key) >= 0 || index($_, substr($key, 3, 30))
                     >= 0 } @texts),
       0, "$what: key not shown");
}

# a key in any column but "key": CSV

for my $col (qw(id subject scopes plan expires not_before disabled hash
                hint created))
{
    for my $value ($key, "Alice $key", "x${key}y") {
        write_file("$prefix/in.csv", "key,$col\n$plain,\"$value\"\n");

        ($rc, $out, $err) = $t->ctl('import', "$prefix/in.csv");
        is($rc, 3, "csv $col exit code");
        is($err, "apikeyctl: import: line 2: column \"$col\" holds an API "
           . "key (not shown); keys go in the \"key\" column\n",
           "csv $col message");
        no_key("csv $col", $out, $err);
    }
}

# with --skip-invalid: skipped, and the same message

write_file("$prefix/in.csv", "key,subject\n$plain,$key\n");

($rc, $out, $err) = $t->ctl('import', '--skip-invalid', "$prefix/in.csv");
is($rc, 0, 'csv skip invalid exit code');
is($err, "apikeyctl: import: skipped line 2: column \"subject\" holds an API "
   . "key (not shown); keys go in the \"key\" column\n",
   'csv skip invalid message');
no_key('csv skip invalid', $out, $err);

# the columns swapped: the key in "id", the id in "key"

write_file("$prefix/in.csv", "id,key\n$key,$plain\n");

($rc, $out, $err) = $t->ctl('import', "$prefix/in.csv");
is($rc, 3, 'csv swapped exit code');
is($err, "apikeyctl: import: line 2: column \"id\" holds an API key (not "
   . "shown); keys go in the \"key\" column\n", 'csv swapped message');

# JSONL

for my $col (qw(id subject plan expires not_before hash)) {
    write_file("$prefix/in.jsonl", qq({"key":"$plain","$col":"$key"}\n));

    ($rc, $out, $err) = $t->ctl('import', "$prefix/in.jsonl");
    is($rc, 3, "jsonl $col exit code");
    is($err, "apikeyctl: import: line 1: field \"$col\" holds an API key "
       . "(not shown); keys go in the \"key\" field\n", "jsonl $col message");
    no_key("jsonl $col", $out, $err);
}

write_file("$prefix/in.jsonl", qq({"key":"$plain","scopes":["a","$key"]}\n));

($rc, $out, $err) = $t->ctl('import', "$prefix/in.jsonl");
is($rc, 3, 'jsonl scopes array exit code');
is($err, "apikeyctl: import: line 1: field \"scopes\" holds an API key (not "
   . "shown); keys go in the \"key\" field\n", 'jsonl scopes array message');

# a key where an id belongs

for my $cmd (['show'], ['revoke'], ['disable'], ['enable'],
             ['expire', '--at', '1d'], ['revoke', 'other'])
{
    ($rc, $out, $err) = $t->ctl(@$cmd, $key);
    is($rc, 3, "@$cmd KEY exit code");
    is($err, "apikeyctl: $cmd->[0]: an API key was given where an id "
       . "belongs (not shown); \"apikeyctl verify -\" reads a key from "
       . "standard input and prints its id\n", "@$cmd KEY message");
    no_key("@$cmd KEY", $out, $err);
}

($rc, $out, $err) = $t->ctl('verify', $other);
is($rc, 0, 'nothing was revoked with a key for an id');

# a key as an option value or an argument

for my $opt (qw(--id --subject --plan --scopes --expires --prefix)) {
    ($rc, $out, $err) = $t->ctl('gen', $opt, $key);
    is($rc, 2, "gen $opt KEY exit code");
    my $m = "apikeyctl: gen: the argument of $opt holds an API key (not "
            . "shown); a key is never an option value\n";
    like($err, qr/^\Q$m\E/, "gen $opt KEY message");
    no_key("gen $opt KEY", $out, $err);
}

($rc, $out, $err) = $t->ctl('gen', "--subject=$key");
is($rc, 2, 'gen --subject=KEY exit code');
like($err, qr/^\Qapikeyctl: gen: --subject holds an API key (not shown)\E/,
     'gen --subject=KEY message');
no_key('gen --subject=KEY', $out, $err);

($rc, $out, $err) = $t->ctl('list', '--subject', "Alice $key");
is($rc, 2, 'list --subject KEY exit code');
no_key('list --subject KEY', $out, $err);

($rc, $out, $err) = $t->ctl('list', $key);
is($rc, 2, 'list KEY exit code');
is($err, "apikeyctl: list: argument 1 holds an API key (not shown); only "
   . "\"verify\" takes a key\nusage:\n  apikeyctl list [--subject S] "
   . "[--plan P]\n                 [--status valid|expired|disabled|"
   . "not_yet_valid]\n                 [--expiring-within DURATION]\n"
   . "                 [--format table|json|csv]\n", 'list KEY message');

for my $opt ('--plan', '--status', '--expiring-within') {
    ($rc, $out, $err) = $t->ctl('list', $opt, $key);
    is($rc, 2, "list $opt KEY exit code");
    like($err, qr/^\Qapikeyctl: list: the argument of $opt holds an API key (not shown)\E/,
         "list $opt KEY message");
    no_key("list $opt KEY", $out, $err);
}

($rc, $out, $err) = $t->ctl('import', $key);
is($rc, 2, 'import KEY exit code');
no_key('import KEY', $out, $err);

($rc, $out, $err) = $t->ctl($key);
is($rc, 2, 'KEY as a command exit code');
is($err, "apikeyctl: unknown command: it holds an API key, not shown (see "
   . "\"apikeyctl help\")\n", 'KEY as a command message');

# a key given as the database or the secret file (-s read as "secret"),
# by option or by environment variable

($rc, $out, $err) = $t->ctl({ db => $key }, 'list');
is($rc, 2, '-d KEY exit code');
is($err, "apikeyctl: the database path (-d or APIKEY_DB) holds an API key, "
   . "not shown; give the database directory\n", '-d KEY message');

($rc, $out, $err) = $t->ctl({ db => "/nonexistent/$key" }, 'init');
is($rc, 2, '-d DIR/KEY init exit code');
no_key('-d DIR/KEY init', $out, $err);

($rc, $out, $err) = $t->ctl({ secret => $key }, 'list');
is($rc, 2, '-s KEY exit code');
is($err, "apikeyctl: the secret file path (-s or APIKEY_SECRET) holds an "
   . "API key, not shown; give the file the hashing secret is in\n",
   '-s KEY message');

for my $var (qw(APIKEY_DB APIKEY_SECRET)) {
    local $ENV{$var} = $key;
    my $text = `$t->{apikeyctl} list 2>&1`;
    is($? >> 8, 2, "$var=KEY exit code");
    no_key("$var=KEY", $text);
}

# verify still takes one, and says nothing of it

($rc, $out, $err) = $t->ctl('verify', $key);
is($rc, 0, 'verify KEY exit code');
is($out, "valid id=owner\n", 'verify KEY output');

# nothing of it was stored

is($t->ctl_ok('export'), $export, 'export unchanged');

my $list = $t->ctl_ok('list', '--format', 'csv');
no_key('list and export', $list, $t->ctl_ok('export', '--format', 'jsonl'));
is(scalar(() = $list =~ /\n/g), 3, 'list has the two keys');

done_testing();
