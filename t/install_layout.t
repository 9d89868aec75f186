#!/usr/bin/perl

# Tests make install and make uninstall (mk/install.mk) into a DESTDIR:
# exactly the files README.md lists, laid out as Debian's libnginx-mod-*
# packages lay out theirs (the module, mod-http-apikey.conf in
# modules-available, its link 50-mod-http-apikey.conf in modules-enabled),
# PREFIX and MODULES_DIR honoured; nginx loads the installed module
# through the installed snippet; make uninstall removes every file it
# installed and nothing else.
#
# APIKEY_README=file compares with the list of another file than
# README.md (a section before it is pasted in).

use strict;
use warnings;

use Test::More;
use File::Find qw(find);

use Apikey::Harness qw(write_file);
use Apikey::Install qw(readme_blocks);

my $t = Apikey::Harness->new()->require_all();

plan(skip_all => 'no make') unless `make --version 2>/dev/null`;

my $root = $t->{root};
my $build = $ENV{APIKEY_BUILD} || "$root/build";

# what make install writes with the default PREFIX (/usr/local) and
# MODULES_DIR: README.md's list, in its words (a link as "path -> target")

my @layout = (
    '/etc/nginx/modules-enabled/50-mod-http-apikey.conf'
        . ' -> /usr/share/nginx/modules-available/mod-http-apikey.conf',
    '/usr/lib/nginx/modules/ngx_http_apikey_module.so',
    '/usr/local/lib/systemd/system/apikeyctl-follow@.service',
    '/usr/local/sbin/apikeyctl',
    '/usr/local/share/bash-completion/completions/apikeyctl',
    '/usr/local/share/man/man1/apikeyctl.1',
    '/usr/share/nginx/modules-available/mod-http-apikey.conf',
);

# make in the repository, the binaries of $build as they are ("-o all":
# nothing is rebuilt); returns (exit code, output)

sub make {
    my (@args) = @_;

    my $out = `make -s -C $root -o all B=$build @args 2>&1`;

    return ($? >> 8, $out);
}

# every file and link under $dir, as "/path" or "/path -> target";
# directories are not files

sub tree {
    my ($dir) = @_;

    my @files;

    find({ no_chdir => 1, wanted => sub {
        return if -d $_ && !-l $_;
        my $path = substr($_, length $dir);
        $path .= ' -> ' . readlink($_) if -l $_;
        push @files, $path;
    } }, $dir) if -d $dir;

    return sort @files;
}

sub mode {
    return sprintf '%04o', (stat $_[0])[2] & 07777;
}

my $dest = $t->prefix() . '/dest';

my ($rc, $out) = make("install DESTDIR=$dest");
is($rc, 0, 'make install DESTDIR') or diag($out);

is_deeply([ tree($dest) ], \@layout, 'installed files')
    or diag(join "\n", tree($dest));

is(Apikey::Harness::slurp(
       "$dest/usr/share/nginx/modules-available/mod-http-apikey.conf"),
   "load_module modules/ngx_http_apikey_module.so;\n",
   'snippet loads the module from nginx modules dir');

is(Apikey::Harness::slurp("$dest/usr/lib/nginx/modules/"
                          . "ngx_http_apikey_module.so"),
   Apikey::Harness::slurp("$build/ngx_http_apikey_module.so"),
   'module is the built one');
is(Apikey::Harness::slurp("$dest/usr/local/share/man/man1/apikeyctl.1"),
   Apikey::Harness::slurp("$root/tools/apikeyctl.1"), 'man page');
is(Apikey::Harness::slurp("$dest/usr/local/share/bash-completion/"
                          . "completions/apikeyctl"),
   Apikey::Harness::slurp("$root/tools/apikeyctl.bash-completion"),
   'bash completion');

is(mode("$dest/usr/local/sbin/apikeyctl"), '0755', 'apikeyctl mode');
like(Apikey::Harness::slurp("$dest/usr/local/lib/systemd/system/"
                            . "apikeyctl-follow\@.service"),
     qr{^ExecStart=/usr/local/sbin/apikeyctl -d }m,
     'unit of follow: the installed apikeyctl');
is(mode("$dest/usr/local/lib/systemd/system/apikeyctl-follow\@.service"),
   '0644', 'unit mode');
is(mode("$dest/usr/lib/nginx/modules/ngx_http_apikey_module.so"), '0644',
   'module mode');
is(mode("$dest/usr/share/nginx/modules-available/mod-http-apikey.conf"),
   '0644', 'snippet mode');

like(`$dest/usr/local/sbin/apikeyctl --version 2>&1`,
     qr/^apikeyctl \d+\.\d+\.\d+$/, 'installed apikeyctl runs');

# README.md lists the same files: the ```text block of "## Install"

my $readme = $ENV{APIKEY_README} || "$root/README.md";
my @readme = grep { $_->[0] eq 'text' } readme_blocks($readme, 'Install');

SKIP: {
    skip('README.md has no "## Install" section with a ```text block of '
         . 'the installed files yet', 1) unless @readme;

    is_deeply([ grep { /\S/ } map { s/^\s+|\s+$//gr }
                split /\n/, $readme[0][1] ],
              \@layout, 'README lists the installed files');
}

# installing again changes nothing (the link is replaced, not nested)

($rc, $out) = make("install DESTDIR=$dest");
is($rc, 0, 'make install again') or diag($out);
is_deeply([ tree($dest) ], \@layout, 'same files the second time');

# nginx loads the installed module through the installed snippet, as
# Debian's nginx does: its prefix has modules/, a link to the modules dir

my $conf = $t->prefix() . '/nginx.conf';
my $nginx_prefix = "$dest/usr/share/nginx";

symlink('../../lib/nginx/modules', "$nginx_prefix/modules") or die $!;

write_file($t->secret(), join('', map { sprintf '%02x', $_ } 1 .. 32) . "\n");
write_file($conf, <<"EOF");
include $nginx_prefix/modules-available/mod-http-apikey.conf;
error_log $t->{prefix}/logs/error.log;
pid $t->{prefix}/nginx.pid;
events {}
http {
    access_log off;
    apikey_secret $t->{secret};
    server {
        listen 127.0.0.1:@{[ $t->port() ]};
        location / { apikey on; }
    }
}
EOF

my $test = "$t->{nginx} -t -p $nginx_prefix/ -c $conf -e $t->{prefix}/test.log";
$out = `$test 2>&1`;
is($? >> 8, 0, 'nginx -t with the installed snippet') or diag($out);

unlink("$nginx_prefix/modules");

# make uninstall: every file gone, someone else's files kept

write_file("$dest/usr/lib/nginx/modules/ngx_http_echo_module.so", "x");
symlink('/usr/share/nginx/modules-available/mod-http-echo.conf',
        "$dest/etc/nginx/modules-enabled/50-mod-http-echo.conf") or die $!;

($rc, $out) = make("uninstall DESTDIR=$dest");
is($rc, 0, 'make uninstall DESTDIR') or diag($out);
is_deeply([ tree($dest) ],
          [ '/etc/nginx/modules-enabled/50-mod-http-echo.conf'
                . ' -> /usr/share/nginx/modules-available/mod-http-echo.conf',
            '/usr/lib/nginx/modules/ngx_http_echo_module.so' ],
          'uninstall leaves only the files it did not install');

unlink("$dest/usr/lib/nginx/modules/ngx_http_echo_module.so",
       "$dest/etc/nginx/modules-enabled/50-mod-http-echo.conf");
is_deeply([ tree($dest) ], [], 'no file left');

# again, with nothing installed, and after a file was deleted by hand

($rc, $out) = make("uninstall DESTDIR=$dest");
is($rc, 0, 'make uninstall with nothing installed') or diag($out);

make("install DESTDIR=$dest");
unlink("$dest/usr/local/sbin/apikeyctl");
($rc, $out) = make("uninstall DESTDIR=$dest");
is($rc, 0, 'make uninstall with a file deleted by hand') or diag($out);
is_deeply([ tree($dest) ], [], 'no file left either');

# PREFIX and MODULES_DIR: the snippet names a modules dir nginx does not
# know in full

my $dest2 = $t->prefix() . '/dest2';

($rc, $out) = make("install DESTDIR=$dest2 PREFIX=/usr "
                   . "MODULES_DIR=/opt/nginx/modules");
is($rc, 0, 'make install PREFIX MODULES_DIR') or diag($out);

is_deeply([ tree($dest2) ], [
    '/etc/nginx/modules-enabled/50-mod-http-apikey.conf'
        . ' -> /usr/share/nginx/modules-available/mod-http-apikey.conf',
    '/opt/nginx/modules/ngx_http_apikey_module.so',
    '/usr/lib/systemd/system/apikeyctl-follow@.service',
    '/usr/sbin/apikeyctl',
    '/usr/share/bash-completion/completions/apikeyctl',
    '/usr/share/man/man1/apikeyctl.1',
    '/usr/share/nginx/modules-available/mod-http-apikey.conf',
], 'installed files under PREFIX and MODULES_DIR');

is(Apikey::Harness::slurp(
       "$dest2/usr/share/nginx/modules-available/mod-http-apikey.conf"),
   "load_module /opt/nginx/modules/ngx_http_apikey_module.so;\n",
   'snippet names another modules dir in full');

($rc, $out) = make("uninstall DESTDIR=$dest2 PREFIX=/usr "
                   . "MODULES_DIR=/opt/nginx/modules");
is($rc, 0, 'make uninstall PREFIX MODULES_DIR') or diag($out);
is_deeply([ tree($dest2) ], [], 'no file left under PREFIX');

done_testing();
