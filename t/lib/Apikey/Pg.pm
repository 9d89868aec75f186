package Apikey::Pg;

# A real PostgreSQL for the follower's tests: Debian's server binaries,
# initdb and pg_ctl in a temporary directory, as the postgres user when
# the tests run as root, listening on a Unix socket in that directory
# only (no TCP port to collide with).  Core Perl only.
#
#   my $why = Apikey::Pg::unavailable();      # undef, or why not
#   plan skip_all => $why if $why;
#
#   my $pg = Apikey::Pg->new();               # initdb and start
#   $pg->conninfo;                            # for apikeyctl follow
#   $pg->psql($sql);                          # stdout; dies on an error
#   $pg->stop('fast'|'immediate'); $pg->start();
#   my $standby = $pg->standby();             # pg_basebackup -R, started
#   my $s = $pg->session(); $s->do($sql);     # one psql for many changes
#   my $pid = $pg->follower($t, @args);       # apikeyctl follow, running
#   my $pid = $pg->follower({ env => $conninfo }, $t, @args);
#                                             # CONNINFO in the environment
#   Apikey::Pg::matrix_skip();                # why not in a matrix run
#
# The servers are stopped (immediate) when the objects go.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IPC::Open2 qw(open2);
use POSIX ();
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

use Apikey::Harness ();

my $bindir;

# the servers still running at the end are stopped before File::Temp
# removes their directories (END blocks run in reverse order)

my %live;

# a test interrupted (prove's ^C, a timeout's TERM) still runs END

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { exit 128 } unless $SIG{$sig};
}

# and the followers it started, should the test die before it stops them

my @followers;

END {
    local $?;

    for my $pid (@followers) {
        kill 'KILL', $pid if waitpid($pid, POSIX::WNOHANG()) == 0;
    }

    for my $pg (grep { defined } values %live) {
        $pg->stop('immediate');
    }
}

sub find_bindir {
    return $bindir if defined $bindir;

    my @dirs = sort { ($b =~ /(\d+)/)[0] <=> ($a =~ /(\d+)/)[0] }
               grep { -x "$_/initdb" && -x "$_/pg_ctl" && -x "$_/postgres" }
               glob('/usr/lib/postgresql/*/bin');

    $bindir = $dirs[0] // '';

    return $bindir;
}

sub as_root { $> == 0 }

# why the tests cannot have a server, or undef

sub unavailable {
    return 'PostgreSQL server not installed (Debian package postgresql)'
        unless find_bindir();

    if (as_root()) {
        return 'no postgres user to run PostgreSQL as'
            unless defined getpwnam('postgres');

        return 'runuser not found' unless -x '/usr/sbin/runuser'
                                          || -x '/sbin/runuser';
    }

    my $tmp = $ENV{TMPDIR} || '/tmp';

    if (as_root()
        && system('runuser', '-u', 'postgres', '--', 'test', '-x', $tmp)
           != 0)
    {
        return "the postgres user cannot enter $tmp (TMPDIR)";
    }

    return undef;
}

sub cmd {
    my ($self, @cmd) = @_;

    return as_root() ? ('runuser', '-u', 'postgres', '--', @cmd) : @cmd;
}

sub run {
    my ($self, @cmd) = @_;

    my $out = "$self->{base}/cmd.out";

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or die "$out: $!";
        open STDERR, '>&', \*STDOUT;
        exec $self->cmd(@cmd) or die "exec $cmd[0]: $!";
    }

    waitpid($pid, 0);

    return ($?, Apikey::Harness::slurp($out));
}

sub run_ok {
    my ($self, @cmd) = @_;

    my ($rc, $out) = $self->run(@cmd);

    die "Apikey::Pg: @cmd: exit " . ($rc >> 8) . "\n$out" if $rc != 0;

    return $out;
}

# a directory the postgres user owns, under TMPDIR

sub make_base {
    my $base = tempdir('apikey-pg-XXXXXX', TMPDIR => 1,
                       CLEANUP => !$ENV{TEST_APIKEY_LEAVE});
    chmod 0755, $base;

    if (as_root()) {
        my ($uid, $gid) = (getpwnam('postgres'))[2, 3];
        chown $uid, $gid, $base;
    }

    return $base;
}

sub new {
    my ($class, %opts) = @_;

    my $self = bless { base => make_base(), port => 5432, %opts }, $class;

    $self->{data} = "$self->{base}/data";

    $self->run_ok("$bindir/initdb", '-D', $self->{data}, '-A', 'trust',
                  '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync');

    $self->start();

    return $self;
}

sub start {
    my ($self) = @_;

    # no fsync: a test machine's crash is not what is tested

    my $o = "-k $self->{base} -p $self->{port} -c listen_addresses= "
            . "-c fsync=off -c full_page_writes=off "
            . "-c max_connections=50";

    $self->run_ok("$bindir/pg_ctl", '-D', $self->{data}, '-l',
                  "$self->{base}/log", '-o', $o, '-w', '-t', '60', 'start');

    $self->{running} = 1;
    $live{"$self"} = $self;
    weaken($live{"$self"});

    return $self;
}

sub stop {
    my ($self, $mode) = @_;

    return $self unless $self->{running};

    $self->run("$bindir/pg_ctl", '-D', $self->{data}, '-m',
               $mode // 'fast', '-w', '-t', '60', 'stop');

    $self->{running} = 0;
    delete $live{"$self"};

    return $self;
}

sub DESTROY {
    my ($self) = @_;
    local $?;

    delete $self->{session};
    $self->stop('immediate') if $self->{running};
}

sub conninfo {
    my ($self, $db) = @_;

    return "host=$self->{base} port=$self->{port} user=postgres "
           . "dbname=" . ($db // 'postgres');
}

sub log { Apikey::Harness::slurp("$_[0]->{base}/log") }

sub psql {
    my ($self, $sql, %opts) = @_;

    my $file = "$self->{base}/sql." . ++$self->{nsql};

    open my $fh, '>', $file or die "$file: $!";
    print $fh $sql;
    close $fh;
    chmod 0644, $file;

    my ($rc, $out) = $self->run("$bindir/psql", '-X', '-q', '-A', '-t',
                                '-v', 'ON_ERROR_STOP=1',
                                '-h', $self->{base}, '-p', $self->{port},
                                '-U', 'postgres', '-d', $opts{db} // 'postgres',
                                '-f', $file);
    unlink $file;

    die "Apikey::Pg: psql: $out" if $rc != 0 && !$opts{may_fail};

    chomp $out;

    return wantarray ? ($rc >> 8, $out) : $out;
}

# apikeyctl follow on the database of a harness, in the background,
# its standard error appended to logs/follow.log there; with { env =>
# CONNINFO } first, no CONNINFO argument: APIKEY_FOLLOW_CONNINFO

sub follower {
    my ($self, @args) = @_;

    my $opts = ref $args[0] eq 'HASH' ? shift @args : {};
    my $t = shift @args;

    my $log = $t->prefix() . '/logs/follow.log';
    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or die "$log: $!";
        open STDERR, '>&', \*STDOUT;

        if (exists $opts->{env}) {
            $ENV{APIKEY_FOLLOW_CONNINFO} = $opts->{env};
        } else {
            push @args, $self->conninfo();
        }

        exec $t->{apikeyctl}, '-d', $t->db(), '-s', $t->secret(), 'follow',
             @args
            or die "exec: $!";
    }

    push @followers, $pid;

    return $pid;
}

# the follower is the same whatever nginx serves the database: the
# tests that take long run with the first nginx of "make test" only

sub matrix_skip {
    return undef unless ($ENV{APIKEY_BUILD} // '') =~ m{/matrix/};

    return 'apikeyctl follow does not depend on the nginx version: '
           . 'tested with the first nginx of make test';
}

# a second server, a streaming replica of this one, started (its
# checkpoint fast: a spread one took 90 s after a CREATE DATABASE)

sub standby {
    my ($self, %opts) = @_;

    my $sb = bless { base => make_base(), port => $self->{port} + 1,
                     %opts }, ref $self;

    $sb->{data} = "$sb->{base}/data";

    $sb->run_ok("$bindir/pg_basebackup", '-D', $sb->{data}, '-R',
                '-X', 'stream', '-h', $self->{base}, '-p', $self->{port},
                '-U', 'postgres', '--no-sync', '--checkpoint=fast');

    $sb->start();

    return $sb;
}

# one psql for many statements: do() returns once they are committed

sub session {
    my ($self, $db) = @_;

    return $self->{session} if $self->{session};

    my ($in, $out);
    my $pid = open2($out, $in, $self->cmd("$bindir/psql", '-X', '-q', '-A',
                    '-t', '-h', $self->{base}, '-p', $self->{port},
                    '-U', 'postgres', '-d', $db // 'postgres'));

    $in->autoflush(1);

    $self->{session} = Apikey::Pg::Session->new($in, $out, $pid);

    return $self->{session};
}

package Apikey::Pg::Session;

sub new {
    my ($class, $in, $out, $pid) = @_;
    return bless { in => $in, out => $out, pid => $pid, n => 0 }, $class;
}

# statements in autocommit, then a marker: their results, once done

sub do {
    my ($self, $sql) = @_;

    my $mark = 'apikey-mark-' . ++$self->{n};
    my $fh = $self->{in};

    print $fh "$sql;\n\\echo $mark\n";

    my @lines;
    my $out = $self->{out};

    while (my $line = <$out>) {
        chomp $line;
        return join("\n", @lines) if $line eq $mark;
        push @lines, $line;
    }

    die "Apikey::Pg: psql session ended";
}

sub DESTROY {
    my ($self) = @_;
    local $?;

    close $self->{in};
    waitpid($self->{pid}, 0);
}

1;
