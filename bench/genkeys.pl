#!/usr/bin/perl
#
# The benchmark key set: N deterministic keys, the same for every
# contender.  Key i (1..N) is "bk", i as nine digits and 29 hexadecimal
# characters of MD5("apikey-bench-" . i): 40 printable characters, a
# "plain" key for the module (not the generated shape), id "b" . i.
#
# usage: genkeys.pl N DIR
#
# writes  DIR/keys.csv    "key,id" header, one key per line (apikeyctl
#                         import --format csv; also read by the Lua check)
#         DIR/keys.map    the body of a map block: "key" id;
#         DIR/valid       one key of the set (the one in the middle)
#         DIR/unknown     a key of the same shape that is not in the set
#
# usage: genkeys.pl --htpasswd USERS FILE
#
# writes an auth_basic user file: user "u" . i, password key i, in the
# {SHA} scheme (a fast hash, as for any random high-entropy secret; crypt
# or apr1 would measure the password hash, not auth_basic), and prints
# the Authorization header value of the user in the middle of the file.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use Digest::SHA qw(sha1_base64);
use MIME::Base64 qw(encode_base64);

sub key { my ($i) = @_; sprintf('bk%09d%s', $i, substr(md5_hex("apikey-bench-$i"), 0, 29)) }

if (@ARGV == 3 && $ARGV[0] eq '--htpasswd') {
    my ($n, $file) = @ARGV[1, 2];
    open(my $f, '>', "$file.tmp") or die "$file.tmp: $!\n";
    for my $i (1 .. $n) {
        my $b64 = sha1_base64(key($i));
        $b64 .= '=' x ((4 - length($b64) % 4) % 4);
        print $f "u$i:{SHA}$b64\n";
    }
    close $f or die "$file.tmp: $!\n";
    rename "$file.tmp", $file or die "$file: $!\n";
    my $mid = int(($n + 1) / 2);
    print 'Basic ', encode_base64("u$mid:" . key($mid), ''), "\n";
    exit 0;
}

die "usage: genkeys.pl N DIR | genkeys.pl --htpasswd USERS FILE\n"
    unless @ARGV == 2 && $ARGV[0] =~ /^\d+$/ && $ARGV[0] > 0;

my ($n, $dir) = @ARGV;

open(my $csv, '>', "$dir/keys.csv.tmp") or die "$dir/keys.csv.tmp: $!\n";
open(my $map, '>', "$dir/keys.map.tmp") or die "$dir/keys.map.tmp: $!\n";

print $csv "key,id\n";
for my $i (1 .. $n) {
    my $k = key($i);
    print $csv "$k,b$i\n";
    print $map "\"$k\" b$i;\n";
}

close $csv or die "$dir/keys.csv.tmp: $!\n";
close $map or die "$dir/keys.map.tmp: $!\n";

open(my $f, '>', "$dir/valid") or die;
print $f key(int(($n + 1) / 2)), "\n";
close $f;

open($f, '>', "$dir/unknown") or die;
print $f key(999_999_999), "\n";      # never in a set: N < 10^9
close $f;

rename "$dir/keys.csv.tmp", "$dir/keys.csv" or die;
rename "$dir/keys.map.tmp", "$dir/keys.map" or die;
