# The coder's directory goes on ImageMagick's coder path only when
# ImageMagick does not find the coder itself, and then before the system's
# coder directory; a missing coder directory croaks, naming it.
use strict;
use warnings;
use lib 't/lib';
use DPCTest;
use Test::More;
use Image::Magick;
use Image::Magick::DPC qw(:all);

my $server = start_server('path');
my $coders = settings()->{coders};
my $system = Image::Magick::DPC::_system_coder_path();
ok(-f "$coders/shm.la", "the coder directory in use holds shm.la ($coders)");

SKIP: {
    skip 'the shm: coder is installed where ImageMagick looks', 3
        if defined((Image::Magick->QueryFormat('shm'))[0]);
    delete local $ENV{MAGICK_CODER_MODULE_PATH};
    configure(coders => work_dir() . '/no-coders');
    eval { publish(test_image(), 'p', socket => $server->{socket}) };
    like($@, qr/^Image::Magick::DPC::publish: no shm: coder in \Q${\ work_dir()}\E\/no-coders \(shm\.la/,
        'a coder directory without the coder croaks, naming it');
    configure(coders => undef);
    ok(publish(test_image(), 'p', socket => $server->{socket}), 'publish');
    is($ENV{MAGICK_CODER_MODULE_PATH}, "$coders:$system",
        'the coder directory, then the system coders');
}

# Found already (as when shm.so is in the system's coder directory): the
# path is left as it is.
my $path = $ENV{MAGICK_CODER_MODULE_PATH} = "$coders:$system";
ok(publish(test_image(), 'p', socket => $server->{socket}), 'publish again');
configure(coders => work_dir() . '/no-coders');
ok(attach('p', socket => $server->{socket}), 'attach with the coder found');
is($ENV{MAGICK_CODER_MODULE_PATH}, $path, 'the path is not touched');
configure(coders => undef);
is(stop_server($server), 0, 'server stops cleanly');
done_testing();
