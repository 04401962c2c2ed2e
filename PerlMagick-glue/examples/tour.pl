#!/usr/bin/perl
# tour.pl: every function of Image::Magick::DPC against a running
# magick-dpc, printing what each gives.
#
#   perl tour.pl --host 127.0.0.1:6668 --socket /run/user/1000/magick-dpc.sock
#
# The shared secret comes from the policy.xml ImageMagick reads
# (MAGICK_CONFIGURE_PATH).  Run perl on the drop-in libMagickCore
# (LD_LIBRARY_PATH=PREFIX/lib) for the tiers to take effect.
use strict;
use warnings;
use Getopt::Long qw(GetOptions);
use Image::Magick;
use Image::Magick::DPC qw(:all);

my %opt = (host => '127.0.0.1:6668');
GetOptions(\%opt, 'host=s', 'socket=s') or die "usage: $0 --host HOST:PORT [--socket PATH]\n";

print "library: ", library(), "\n";
configure(hosts => [$opt{host}], tiers => 'shm,distributed,memory',
    tile_cache => '4MiB', defined $opt{socket} ? (socket => $opt{socket}) : ());
my $now = settings();
print "settings: ", join(', ', map { "$_=$now->{$_}" } sort keys %$now), "\n";

# An image made now gets its pixel cache from the first tier that takes it.
my $image = Image::Magick->new(size => '320x240');
my $err = $image->Read('plasma:fractal') || $image->Blur(geometry => '0x2');
die "$err\n" if $err;
my $shm = status();
printf "shm tier: %d bytes in use, %d segments, held by pids %s\n",
    $shm->{used}, $shm->{segments},
    join(',', map { $_->{pid} } @{ $shm->{holders} }) || 'none';

publish($image, 'tour', ttl => '5m');
for my $entry (names()) {
    printf "published: %s (uid %d) %d bytes, %d s to live\n",
        @$entry{qw(name owner bytes ttl_seconds)};
}
my $copy = attach('tour');
printf "attached: %dx%d, same pixels: %s\n", $copy->Get('width'),
    $copy->Get('height'),
    $copy->Get('signature') eq $image->Get('signature') ? 'yes' : 'no';
remove('tour');
printf "after remove: %d names\n", scalar names();

configure(tiers => 'distributed');
my $remote = $image->Clone();
$remote->Rotate(degrees => 30);
my $tcp = status(host => $opt{host});
printf "server %s: %d caches open, %d requests served, %d bytes in RAM, up %.1f s\n",
    $opt{host}, @$tcp{qw(caches_open requests_served bytes_ram uptime_seconds)};

eval { attach('tour') };
print "attach after remove: $@";
